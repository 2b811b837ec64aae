package syncer

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var pinnedKey = specKey{workspace: testWorkspace, gvr: deploymentsGVR, upstreamNamespace: testNamespace, name: "pinned"}

// pinnedDeployment names a node of the physical cluster: the containment rule drops it.
func pinnedDeployment(opts ...objectOption) *unstructured.Unstructured {
	return upstreamDeployment("pinned", append([]objectOption{withField("control-plane-1", "spec", "template", "spec", "nodeName")}, opts...)...)
}

func TestSpecFieldsDroppedEvent(t *testing.T) {
	tests := []struct {
		name                 string
		downstream           func(t *testing.T) []*unstructured.Unstructured
		upstream             *unstructured.Unstructured
		wantDownstreamWrites []string
		wantEvents           []string
	}{
		{
			name:                 "new copy without the field: one Warning Event",
			upstream:             pinnedDeployment(),
			wantDownstreamWrites: []string{"patch deployments"},
			wantEvents:           []string{"Warning FieldsDropped"},
		},
		{
			name:     "copy up to date (a restart): no write, no Event",
			upstream: pinnedDeployment(),
			downstream: func(t *testing.T) []*unstructured.Unstructured {
				return []*unstructured.Unstructured{syncedCopy(t, pinnedDeployment())}
			},
		},
		{
			name:     "another field changed, same drops: applied, no second Event",
			upstream: pinnedDeployment(withField(int64(5), "spec", "replicas")),
			downstream: func(t *testing.T) []*unstructured.Unstructured {
				return []*unstructured.Unstructured{syncedCopy(t, pinnedDeployment())}
			},
			wantDownstreamWrites: []string{"patch deployments"},
		},
		{
			name:     "drift repaired: no Event",
			upstream: pinnedDeployment(),
			downstream: func(t *testing.T) []*unstructured.Unstructured {
				return []*unstructured.Unstructured{syncedCopy(t, pinnedDeployment(), withField(int64(9), "spec", "replicas"))}
			},
			wantDownstreamWrites: []string{"patch deployments"},
		},
		{
			name:     "a field newly dropped: Event",
			upstream: pinnedDeployment(),
			downstream: func(t *testing.T) []*unstructured.Unstructured {
				return []*unstructured.Unstructured{syncedCopy(t, upstreamDeployment("pinned"))}
			},
			wantDownstreamWrites: []string{"patch deployments"},
			wantEvents:           []string{"Warning FieldsDropped"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := testObjects{upstream: []*unstructured.Unstructured{tc.upstream}, namespaces: []*corev1.Namespace{ownedNamespace(t)}}
			if tc.downstream != nil {
				objs.downstream = tc.downstream(t)
			}
			env := newTestEnv(t, objs)
			requeue, err := env.spec.reconcile(t.Context(), pinnedKey)
			expectProcessError(t, requeue, err, "", false)
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), tc.wantDownstreamWrites)
			expectEvents(t, env.events(), tc.wantEvents)
		})
	}
}

// The SyncTarget's allowances reach the chain: with allowExternalIPs the field goes down.
func TestSpecTenancyAllowancesReachTheChain(t *testing.T) {
	service := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "web", "namespace": testNamespace},
		"spec":     map[string]any{"externalIPs": []any{"203.0.113.7"}},
	}}
	env := newTestEnv(t, testObjects{})
	req := specRequest{key: specKey{workspace: testWorkspace, gvr: configMapsGVR.GroupVersion().WithResource("services"), upstreamNamespace: testNamespace, name: "web"},
		downstreamNamespace: downstreamNamespaceFor(t, testWorkspace, testNamespace)}
	for _, allow := range []bool{false, true} {
		env.spec.tenancy = func() workloadv1alpha1.SyncTargetTenancy {
			return workloadv1alpha1.SyncTargetTenancy{AllowExternalIPs: allow}
		}
		desired, err := env.spec.desired(t.Context(), req, service)
		if err != nil {
			t.Fatal(err)
		}
		_, found, _ := unstructured.NestedStringSlice(desired.Object, "spec", "externalIPs")
		if found != allow {
			t.Errorf("allowExternalIPs=%v: externalIPs in the desired object = %v", allow, found)
		}
		if dropped := desired.GetAnnotations()[transform.DroppedFieldsAnnotation]; (dropped != "") == allow {
			t.Errorf("allowExternalIPs=%v: dropped-fields annotation = %q", allow, dropped)
		}
	}
}
