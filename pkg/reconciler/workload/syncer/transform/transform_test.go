package transform

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

const noisyDeployment = `{
  "apiVersion": "apps/v1",
  "kind": "Deployment",
  "metadata": {
    "name": "web",
    "namespace": "default",
    "generateName": "web-",
    "selfLink": "/apis/apps/v1/namespaces/default/deployments/web",
    "uid": "2b1e6a5c-0000-4000-8000-000000000001",
    "resourceVersion": "4711",
    "generation": 3,
    "creationTimestamp": "2025-01-01T00:00:00Z",
    "deletionTimestamp": "2025-01-02T00:00:00Z",
    "deletionGracePeriodSeconds": 30,
    "finalizers": ["workload.kcp.io/syncer-STKEY", "example.com/keep"],
    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1"}],
    "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1"}],
    "labels": {
      "app": "web",
      "state.workload.kcp.io/STKEY": "Sync",
      "state.workload.kcp.io/OTHERKEY": "Sync",
      "internal.workload.kcp.io/cluster": "forged"
    },
    "annotations": {
      "team": "a",
      "kcp.io/cluster": "2x8h3kq",
      "kubectl.kubernetes.io/last-applied-configuration": "{}",
      "deletion.internal.workload.kcp.io/OTHERKEY": "2025-01-02T00:00:00Z",
      "finalizers.workload.kcp.io/STKEY": "example.com/hold",
      "experimental.spec-diff.workload.kcp.io/OTHERKEY": "[{\"op\":\"replace\",\"path\":\"/replicas\",\"value\":9}]",
      "experimental.status.workload.kcp.io/STKEY": "{\"replicas\":1}",
      "experimental.workload.kcp.io/downstream-owned-fields": "",
      "kcp.io/namespace-locator": "{}",
      "internal.workload.kcp.io/spec-hash": "forged"
    }
  },
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"app": "web"}},
    "template": {
      "metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "resources": {"requests": {"cpu": "0.5"}}}]}
    }
  },
  "status": {"replicas": 3, "readyReplicas": 2}
}`

func TestTransformDown(t *testing.T) {
	tests := []struct {
		name     string
		tc       Context
		upstream string
		want     string
	}{
		{
			name:     "deployment with every kind of metadata noise",
			tc:       namespacedContext(deploymentsGVR),
			upstream: noisyDeployment,
			want: `{
			  "apiVersion": "apps/v1",
			  "kind": "Deployment",
			  "metadata": {
			    "name": "web",
			    "namespace": "kcp-0123456789ab",
			    "labels": {"app": "web", "internal.workload.kcp.io/cluster": "STKEY"},
			    "annotations": {"team": "a"}
			  },
			  "spec": {
			    "replicas": 3,
			    "selector": {"matchLabels": {"app": "web"}},
			    "template": {
			      "metadata": {"labels": {"app": "web", "state.workload.kcp.io/STKEY": "Upsync"}},
			      "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "resources": {"requests": {"cpu": "0.5"}}}]}
			    }
			  }
			}`,
		},
		{
			name: "configmap keeps data and binaryData, empty annotations removed",
			tc:   namespacedContext(configMapsGVR),
			upstream: `{
			  "apiVersion": "v1", "kind": "ConfigMap",
			  "metadata": {"name": "cfg", "namespace": "default", "uid": "u",
			    "labels": {"state.workload.kcp.io/STKEY": "Sync"},
			    "annotations": {"kcp.io/cluster": "2x8h3kq"}},
			  "data": {"a": "1"},
			  "binaryData": {"b": "AQI="},
			  "immutable": true
			}`,
			want: `{
			  "apiVersion": "v1", "kind": "ConfigMap",
			  "metadata": {"name": "cfg", "namespace": "kcp-0123456789ab",
			    "labels": {"internal.workload.kcp.io/cluster": "STKEY"}},
			  "data": {"a": "1"},
			  "binaryData": {"b": "AQI="},
			  "immutable": true
			}`,
		},
		{
			name: "cluster-scoped object gets no namespace",
			tc: Context{SyncTargetKey: stKey, SyncTargetName: "cluster-1", UpstreamWorkspace: "root:org:team-a",
				GVR: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}},
			upstream: `{
			  "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
			  "metadata": {"name": "reader", "resourceVersion": "1", "labels": {"state.workload.kcp.io/STKEY": "Sync"}},
			  "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
			}`,
			want: `{
			  "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
			  "metadata": {"name": "reader", "labels": {"internal.workload.kcp.io/cluster": "STKEY"}},
			  "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
			}`,
		},
		{
			name: "secret of an ordinary type is synced with type and stringData",
			tc:   namespacedContext(secretsGVR),
			upstream: `{
			  "apiVersion": "v1", "kind": "Secret",
			  "metadata": {"name": "creds", "namespace": "default"},
			  "type": "Opaque", "data": {"k": "dg=="}, "stringData": {"s": "v"}
			}`,
			want: `{
			  "apiVersion": "v1", "kind": "Secret",
			  "metadata": {"name": "creds", "namespace": "kcp-0123456789ab",
			    "labels": {"internal.workload.kcp.io/cluster": "STKEY"}},
			  "type": "Opaque", "data": {"k": "dg=="}, "stringData": {"s": "v"}
			}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := obj(t, tt.upstream)
			before := upstream.DeepCopy()

			got, err := DefaultChain().Down(t.Context(), tt.tc, upstream)
			if err != nil {
				t.Fatalf("Down() error = %v", err)
			}
			expectObject(t, got, obj(t, tt.want))
			expectUnchanged(t, before, upstream)
		})
	}
}

func TestTransformDownDoesNotShareMemoryWithUpstream(t *testing.T) {
	upstream := obj(t, noisyDeployment)
	before := upstream.DeepCopy()
	got, err := DefaultChain().Down(t.Context(), namespacedContext(deploymentsGVR), upstream)
	if err != nil {
		t.Fatalf("Down() error = %v", err)
	}
	// Writing through the result must not reach the caller's (cached) upstream object.
	got.Object["spec"].(map[string]interface{})["template"].(map[string]interface{})["metadata"].(map[string]interface{})["labels"].(map[string]interface{})["app"] = "changed"
	got.Object["spec"].(map[string]interface{})["replicas"] = int64(0)
	expectUnchanged(t, before, upstream)
}

func TestTransformServiceAccountTokenSecretFiltered(t *testing.T) {
	tests := []struct {
		name     string
		upstream string
		filtered bool
	}{
		{
			name:     "service-account token secret",
			upstream: `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "default-token-x", "namespace": "default"}, "type": "kubernetes.io/service-account-token"}`,
			filtered: true,
		},
		{
			name:     "opaque secret",
			upstream: `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "type": "Opaque"}`,
		},
		{
			name:     "secret without a type",
			upstream: `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}}`,
		},
		{
			name:     "another kind with the same type field",
			upstream: `{"apiVersion": "example.com/v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "type": "kubernetes.io/service-account-token"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DefaultChain().Down(t.Context(), namespacedContext(secretsGVR), obj(t, tt.upstream))
			if tt.filtered {
				var fe *FilteredError
				if !errors.Is(err, ErrFiltered) || !errors.As(err, &fe) || !IsFiltered(err) {
					t.Fatalf("Down() error = %v, want ErrFiltered", err)
				}
				if fe.Filter != (ServiceAccountTokenSecretFilter{}).Name() || fe.Reason == "" {
					t.Errorf("FilteredError = %+v, want the filter's name and a reason", fe)
				}
				if IsInvalidInput(err) {
					t.Errorf("a filtered object must not be reported as invalid input")
				}
				return
			}
			if err != nil {
				t.Fatalf("Down() error = %v", err)
			}
		})
	}
}

func TestTransformContextValidation(t *testing.T) {
	upstream := obj(t, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}`)
	tests := []struct {
		name string
		tc   Context
	}{
		{name: "empty key", tc: Context{UpstreamNamespace: "default", DownstreamNamespace: "kcp-x"}},
		{name: "upstream namespace without downstream namespace", tc: Context{SyncTargetKey: stKey, UpstreamNamespace: "default"}},
		{name: "downstream namespace without upstream namespace", tc: Context{SyncTargetKey: stKey, DownstreamNamespace: "kcp-x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DefaultChain().Down(t.Context(), tt.tc, upstream)
			if err == nil {
				t.Fatal("Down() error = nil, want an error")
			}
			if IsInvalidInput(err) || IsFiltered(err) {
				t.Errorf("a wrong Context is a programming error, got %v", err)
			}
		})
	}
}
