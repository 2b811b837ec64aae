package syncer

import (
	"net/url"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestAndSyncSelector(t *testing.T) {
	const key = "abc"
	label := workloadv1alpha1.ClusterResourceStateLabel(key)
	tests := []struct {
		name, selector string
		matches        map[string]string
		rejects        []map[string]string
		wantErr        bool
	}{
		{name: "no selector", matches: map[string]string{label: "Sync"},
			rejects: []map[string]string{{}, {label: "Upsync"}, {label: ""}, {workloadv1alpha1.ClusterResourceStateLabel("other"): "Sync"}}},
		{name: "caller selector kept", selector: "app=web", matches: map[string]string{label: "Sync", "app": "web"},
			rejects: []map[string]string{{label: "Sync"}, {"app": "web"}}},
		{name: "caller cannot widen", selector: label + " in (Sync,Upsync)", matches: map[string]string{label: "Sync"},
			rejects: []map[string]string{{label: "Upsync"}}},
		{name: "unbalanced selector refused", selector: "app in (web", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"labelSelector": {tt.selector}, "watch": {"true"}}
			got, err := andStateSelector(q, key, workloadv1alpha1.ResourceStateSync)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Get("watch") != "true" {
				t.Errorf("other parameters lost: %v", got)
			}
			if q.Get("labelSelector") != tt.selector {
				t.Errorf("the caller's query was modified: %v", q)
			}
			sel, err := labels.Parse(got.Get("labelSelector"))
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(labels.Set(tt.matches)) {
				t.Errorf("%q does not match %v", sel, tt.matches)
			}
			for _, r := range tt.rejects {
				if sel.Matches(labels.Set(r)) {
					t.Errorf("%q matches %v", sel, r)
				}
			}
		})
	}
}
