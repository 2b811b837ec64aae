package transform

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	servicesGVR     = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	claimsGVR       = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	statefulSetsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	cronJobsGVR     = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}
)

const containedService = `{"apiVersion": "v1", "kind": "Service",
  "metadata": {"name": "web", "namespace": "default", "labels": {"state.workload.kcp.io/STKEY": "Sync"}},
  "spec": {"type": "LoadBalancer", "externalIPs": ["203.0.113.7"], "loadBalancerIP": "203.0.113.8",
    "ports": [{"port": 80}]}}`

const containedClaim = `{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
  "metadata": {"name": "data", "namespace": "default", "labels": {"state.workload.kcp.io/STKEY": "Sync"},
    "annotations": {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
      "volume.beta.kubernetes.io/storage-provisioner": "p", "volume.kubernetes.io/storage-provisioner": "p",
      "volume.kubernetes.io/selected-node": "node-1", "team": "a"}},
  "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "someone-elses-pv",
    "resources": {"requests": {"storage": "1Gi"}}}}`

func TestContainmentService(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tenancy     workloadv1alpha1.SyncTargetTenancy
		wantSpec    string
		wantDropped []string
	}{
		{
			name:        "nothing allowed: both dropped and recorded",
			wantSpec:    `{"type": "LoadBalancer", "ports": [{"port": 80}]}`,
			wantDropped: []string{"spec.externalIPs", "spec.loadBalancerIP"},
		},
		{
			name:        "external IPs allowed",
			tenancy:     workloadv1alpha1.SyncTargetTenancy{AllowExternalIPs: true},
			wantSpec:    `{"type": "LoadBalancer", "externalIPs": ["203.0.113.7"], "ports": [{"port": 80}]}`,
			wantDropped: []string{"spec.loadBalancerIP"},
		},
		{
			name:     "both allowed",
			tenancy:  workloadv1alpha1.SyncTargetTenancy{AllowExternalIPs: true, AllowLoadBalancerIP: true},
			wantSpec: `{"type": "LoadBalancer", "externalIPs": ["203.0.113.7"], "loadBalancerIP": "203.0.113.8", "ports": [{"port": 80}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := namespacedContext(servicesGVR)
			ctx.Tenancy = tc.tenancy
			up := obj(t, containedService)
			got, err := DefaultChain().Down(t.Context(), ctx, up)
			if err != nil {
				t.Fatalf("Down() error = %v", err)
			}
			expectObject(t, &unstructured.Unstructured{Object: map[string]any{"spec": got.Object["spec"]}},
				obj(t, `{"spec": `+tc.wantSpec+`}`))
			if dropped := DroppedFields(got); !slices.Equal(dropped, tc.wantDropped) {
				t.Errorf("DroppedFields() = %v, want %v", dropped, tc.wantDropped)
			}
		})
	}
}

func TestContainmentClaim(t *testing.T) {
	up := obj(t, containedClaim)
	got, err := DefaultChain().Down(t.Context(), namespacedContext(claimsGVR), up)
	if err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	if _, found, _ := unstructured.NestedString(got.Object, "spec", "volumeName"); found {
		t.Error("spec.volumeName went down")
	}
	for _, a := range ClaimBindAnnotations {
		if _, ok := got.GetAnnotations()[a]; ok {
			t.Errorf("annotation %s went down", a)
		}
	}
	if got.GetAnnotations()["team"] != "a" {
		t.Errorf("a user annotation was dropped: %v", got.GetAnnotations())
	}
	want := []string{
		"metadata.annotations[pv.kubernetes.io/bind-completed]",
		"metadata.annotations[pv.kubernetes.io/bound-by-controller]",
		"metadata.annotations[volume.beta.kubernetes.io/storage-provisioner]",
		"metadata.annotations[volume.kubernetes.io/selected-node]",
		"metadata.annotations[volume.kubernetes.io/storage-provisioner]",
		"spec.volumeName",
	}
	if dropped := DroppedFields(got); !slices.Equal(dropped, want) {
		t.Errorf("DroppedFields() = %v, want %v", dropped, want)
	}
}

// A claim the physical cluster bound (its binder set volumeName and the bind annotations)
// needs no apply: the syncer never owns those fields, so it never fights the binder. This
// is what keeps a restart, or a resync, of a bound claim at zero writes.
func TestContainmentBoundClaimNeedsNoApply(t *testing.T) {
	up := obj(t, containedClaim)
	desired, err := DefaultChain().Down(t.Context(), namespacedContext(claimsGVR), up)
	if err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	if err := SetHash(desired); err != nil {
		t.Fatal(err)
	}
	live := desired.DeepCopy()
	live.Object["spec"].(map[string]any)["volumeName"] = "pvc-0f3e-downstream"
	live.Object["spec"].(map[string]any)["volumeMode"] = "Filesystem"
	annotations := live.GetAnnotations()
	annotations["pv.kubernetes.io/bind-completed"] = "yes"
	annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
	annotations["volume.kubernetes.io/selected-node"] = "kwok-node-0"
	live.SetAnnotations(annotations)
	live.Object["status"] = map[string]any{"phase": "Bound"}
	if need, reason := NeedsApply(desired, live); need {
		t.Errorf("NeedsApply() on a claim bound downstream = true (%s), want false", reason)
	}

	// The same upstream claim transformed again (a restart) has the same hash.
	again, err := DefaultChain().Down(t.Context(), namespacedContext(claimsGVR), up)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetHash(again); err != nil {
		t.Fatal(err)
	}
	if need, reason := NeedsApply(again, live); need {
		t.Errorf("NeedsApply() after a restart = true (%s), want false", reason)
	}
}

func TestContainmentClaimTemplatesAndNodeName(t *testing.T) {
	up := obj(t, `{"apiVersion": "apps/v1", "kind": "StatefulSet",
	  "metadata": {"name": "db", "namespace": "default", "labels": {"state.workload.kcp.io/STKEY": "Sync"}},
	  "spec": {"template": {"spec": {"nodeName": "control-plane-1", "containers": [{"name": "db", "image": "pg"}]}},
	    "volumeClaimTemplates": [
	      {"metadata": {"name": "data", "annotations": {"volume.kubernetes.io/selected-node": "n"}},
	       "spec": {"volumeName": "someone-elses-pv"}},
	      {"metadata": {"name": "logs"}, "spec": {"volumeName": ""}}]}}`)
	got, err := DefaultChain().Down(t.Context(), namespacedContext(statefulSetsGVR), up)
	if err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	expectObject(t, &unstructured.Unstructured{Object: map[string]any{"spec": got.Object["spec"]}}, obj(t, `{"spec":
	  {"template": {"metadata": {"labels": {"state.workload.kcp.io/STKEY": "Upsync"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}},
	   "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}, {"metadata": {"name": "logs"}, "spec": {}}]}}`))
	want := []string{
		"spec.template.spec.nodeName",
		"spec.volumeClaimTemplates[0].metadata.annotations[volume.kubernetes.io/selected-node]",
		"spec.volumeClaimTemplates[0].spec.volumeName",
	}
	if dropped := DroppedFields(got); !slices.Equal(dropped, want) {
		t.Errorf("DroppedFields() = %v, want %v", dropped, want)
	}
}

func TestContainmentCronJobNodeName(t *testing.T) {
	up := obj(t, `{"apiVersion": "batch/v1", "kind": "CronJob",
	  "metadata": {"name": "c", "namespace": "default"},
	  "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"nodeName": "n1", "containers": []}}}}}}`)
	got, err := DefaultChain().Down(t.Context(), namespacedContext(cronJobsGVR), up)
	if err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	if _, found, _ := unstructured.NestedString(got.Object, "spec", "jobTemplate", "spec", "template", "spec", "nodeName"); found {
		t.Error("nodeName went down")
	}
	if dropped := DroppedFields(got); !slices.Equal(dropped, []string{"spec.jobTemplate.spec.template.spec.nodeName"}) {
		t.Errorf("DroppedFields() = %v", dropped)
	}
}

// Neither the per-target spec-diff (written by the tenant) nor a forged annotation can put a
// contained field back or hide a drop.
func TestContainmentSurvivesSpecDiffAndForgedAnnotation(t *testing.T) {
	up := obj(t, `{"apiVersion": "v1", "kind": "Service",
	  "metadata": {"name": "web", "namespace": "default", "annotations": {
	    "experimental.spec-diff.workload.kcp.io/STKEY": "[{\"op\": \"add\", \"path\": \"/externalIPs\", \"value\": [\"198.51.100.1\"]}]",
	    "internal.workload.kcp.io/dropped-fields": ""}},
	  "spec": {"ports": [{"port": 80}]}}`)
	got, err := DefaultChain().Down(t.Context(), namespacedContext(servicesGVR), up)
	if err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	if _, found, _ := unstructured.NestedStringSlice(got.Object, "spec", "externalIPs"); found {
		t.Error("a spec-diff put spec.externalIPs back")
	}
	if dropped := DroppedFields(got); !slices.Equal(dropped, []string{"spec.externalIPs"}) {
		t.Errorf("DroppedFields() = %v", dropped)
	}

	clean := obj(t, `{"apiVersion": "v1", "kind": "ConfigMap",
	  "metadata": {"name": "c", "namespace": "default", "annotations": {"internal.workload.kcp.io/dropped-fields": "spec.x"}}}`)
	got, err = DefaultChain().Down(t.Context(), namespacedContext(configMapsGVR), clean)
	if err != nil {
		t.Fatal(err)
	}
	if dropped := DroppedFields(got); dropped != nil {
		t.Errorf("a forged DroppedFieldsAnnotation went down: %v", dropped)
	}
}

func TestContainmentEmptyFieldsDroppedSilently(t *testing.T) {
	up := obj(t, `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
	  "spec": {"externalIPs": [], "loadBalancerIP": "", "ports": [{"port": 80}]}}`)
	got, err := DefaultChain().Down(t.Context(), namespacedContext(servicesGVR), up)
	if err != nil {
		t.Fatal(err)
	}
	if dropped := DroppedFields(got); dropped != nil {
		t.Errorf("DroppedFields() = %v, want none", dropped)
	}
	if _, found := got.Object["spec"].(map[string]any)["externalIPs"]; found {
		t.Error("an empty externalIPs list went down")
	}
}
