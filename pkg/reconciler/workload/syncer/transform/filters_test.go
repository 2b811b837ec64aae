package transform

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var serviceAccountsGVR = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}

func TestBuiltinFiltersPerNamespaceObjectsAndControllerChildren(t *testing.T) {
	tests := []struct {
		name     string
		gvr      schema.GroupVersionResource
		upstream string
		// filter is the name of the filter that must refuse the object; "" means synced.
		filter string
	}{
		{
			name:     "kube-root-ca.crt ConfigMap",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "default", "labels": {"state.workload.kcp.io/STKEY": "Sync"}}, "data": {"ca.crt": "hub CA"}}`,
			filter:   "per-namespace-system-object",
		},
		{
			name:     "another ConfigMap",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-root-ca.crt", "namespace": "default"}}`,
		},
		{
			name:     "an upstream ConfigMap named like the syncer's hub CA copy",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kcp-root-ca.crt", "namespace": "default", "labels": {"state.workload.kcp.io/STKEY": "Sync"}}, "data": {"ca.crt": "not the hub CA"}}`,
			filter:   "per-namespace-system-object",
		},
		{
			name:     "kube-root-ca.crt of another kind",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "example.com/v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "default"}}`,
		},
		{
			name:     "default ServiceAccount",
			gvr:      serviceAccountsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default"}}`,
			filter:   "per-namespace-system-object",
		},
		{
			name:     "a user's ServiceAccount",
			gvr:      serviceAccountsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "default"}}`,
		},
		{
			name:     "a user's ConfigMap named default",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "default", "namespace": "default"}}`,
		},
		{
			name:     "ReplicaSet of a Deployment",
			gvr:      schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"},
			upstream: `{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d4f", "namespace": "default", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true}]}}`,
			filter:   "builtin-controller-child",
		},
		{
			name:     "Job of a CronJob",
			gvr:      schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"},
			upstream: `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "nightly-29000", "namespace": "default", "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u1", "controller": true, "blockOwnerDeletion": true}]}}`,
			filter:   "builtin-controller-child",
		},
		{
			name:     "claim of a StatefulSet",
			gvr:      schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"},
			upstream: `{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-0", "namespace": "default", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u1", "controller": true}]}}`,
			filter:   "builtin-controller-child",
		},
		{
			name:     "EndpointSlice of a Service",
			gvr:      schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
			upstream: `{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abcde", "namespace": "default", "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u1", "controller": true}]}}`,
			filter:   "builtin-controller-child",
		},
		{
			name:     "a Deployment an operator on the hub controls",
			gvr:      deploymentsGVR,
			upstream: `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "db", "namespace": "default", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Database", "name": "db", "uid": "u1", "controller": true}]}}`,
		},
		{
			name:     "owned by a Deployment but not as its controller",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1"}]}}`,
		},
		{
			name:     "controller reference with an unparsable apiVersion",
			gvr:      configMapsGVR,
			upstream: `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "ownerReferences": [{"apiVersion": "a/b/c", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true}]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := obj(t, tt.upstream)
			before := upstream.DeepCopy()
			_, err := DefaultChain().Down(t.Context(), namespacedContext(tt.gvr), upstream)
			expectUnchanged(t, before, upstream)
			reason := NotSyncedReason(upstream)
			if tt.filter == "" {
				if err != nil {
					t.Fatalf("Down() error = %v, want the object synced", err)
				}
				if reason != "" {
					t.Errorf("NotSyncedReason() = %q, want \"\" (the label propagation must label what the syncer syncs)", reason)
				}
				return
			}
			var fe *FilteredError
			if !errors.As(err, &fe) || !IsFiltered(err) {
				t.Fatalf("Down() error = %v, want ErrFiltered", err)
			}
			if fe.Filter != tt.filter || fe.Reason == "" {
				t.Errorf("FilteredError = %+v, want filter %q with a reason", fe, tt.filter)
			}
			if reason != fe.Reason {
				t.Errorf("NotSyncedReason() = %q, want the syncer's reason %q (both sides decide alike)", reason, fe.Reason)
			}
		})
	}
}

func TestNotSyncedReasonServiceAccountTokenSecret(t *testing.T) {
	secret := obj(t, `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "default-token-x", "namespace": "default"}, "type": "kubernetes.io/service-account-token"}`)
	if NotSyncedReason(secret) == "" {
		t.Errorf("NotSyncedReason() = \"\" for a service-account token Secret, want a reason")
	}
}
