package syncer

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestRequestedStatus(t *testing.T) {
	tests := []struct {
		name     string
		verb     verb
		body     string
		previous string
		want     any
	}{
		{name: "update takes .status only", verb: verbUpdate, body: `{"metadata":{"labels":{"x":"y"}},"spec":{"a":1},"status":{"ready":2}}`, want: map[string]any{"ready": float64(2)}},
		{name: "update without status clears", verb: verbUpdate, body: `{"spec":{}}`, want: nil},
		{name: "empty status clears", verb: verbUpdate, body: `{"status":{}}`, want: nil},
		{name: "patch applies to the previous status of the target", verb: verbPatch, body: `{"status":{"ready":3}}`, previous: `{"ready":1,"total":4}`,
			want: map[string]any{"ready": float64(3), "total": float64(4)}},
		{name: "patch null clears", verb: verbPatch, body: `{"metadata":{"resourceVersion":"5"},"status":null}`, previous: `{"ready":1}`, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestedStatus(request{Verb: tt.verb}, []byte(tt.body), tt.previous)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestSummaryOf(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	obj := func(labels, annotations map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}}
	}
	state, status := workloadv1alpha1.ClusterResourceStateLabel, workloadv1alpha1.StatusAnnotation
	tests := []struct {
		name   string
		obj    map[string]any
		want   any
		wantOK bool
	}{
		{name: "one target: its status", wantOK: true, want: map[string]any{"replicas": float64(2)},
			obj: obj(map[string]any{state("a"): "Sync"}, map[string]any{status("a"): `{"replicas":2}`})},
		{name: "a target not in Sync does not count", wantOK: true, want: map[string]any{"replicas": float64(2)},
			obj: obj(map[string]any{state("a"): "Sync", state("b"): ""}, map[string]any{status("a"): `{"replicas":2}`, status("b"): `{"replicas":3}`})},
		{name: "a target without status does not count", wantOK: true, want: map[string]any{"replicas": float64(2)},
			obj: obj(map[string]any{state("a"): "Sync", state("b"): "Sync"}, map[string]any{status("a"): `{"replicas":2}`})},
		{name: "no status reported: cleared", wantOK: true, want: nil,
			obj: obj(map[string]any{state("a"): "Sync"}, nil)},
		{name: "unreadable annotation: left alone",
			obj: obj(map[string]any{state("a"): "Sync", state("b"): "Sync"}, map[string]any{status("a"): `{}`, status("b"): `{`})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := summaryOf(request{GR: gr}, tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, %v; want %#v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
