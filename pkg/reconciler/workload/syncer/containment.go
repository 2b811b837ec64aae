package syncer

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// Tenant containment on the spec leg: the transformation chain drops what a tenant may not
// set on a shared physical cluster (transform.ContainmentTransformer), given the allowances
// of the served SyncTarget's spec.tenancy, read from the SyncTarget cache on every
// reconcile; a change of the allowances re-queues every object so that it takes effect at
// once. The user learns about a drop from one Warning Event per change of what was dropped.

// reasonFieldsDropped is the Event reason of a copy applied without some of its fields.
const reasonFieldsDropped = "FieldsDropped"

// syncTargetTenancy returns the allowances of the served SyncTarget, as cached; nothing is
// allowed while it is not cached.
func syncTargetTenancy(lister workloadlisters.SyncTargetLister, name string) func() workloadv1alpha1.SyncTargetTenancy {
	return func() workloadv1alpha1.SyncTargetTenancy {
		st, err := lister.Get(name)
		if err != nil || st.Spec.Tenancy == nil {
			return workloadv1alpha1.SyncTargetTenancy{}
		}
		return *st.Spec.Tenancy
	}
}

// requeueOnTenancyChange queues every cached upstream object when the SyncTarget's
// spec.tenancy changes, so that allowed fields arrive (and disallowed ones leave) without
// waiting for the objects to change.
func requeueOnTenancyChange(informer cache.SharedIndexInformer, keys func() []specKey, enqueue func(specKey)) error {
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			old, _ := oldObj.(*workloadv1alpha1.SyncTarget)
			st, _ := newObj.(*workloadv1alpha1.SyncTarget)
			if old == nil || st == nil || equality.Semantic.DeepEqual(old.Spec.Tenancy, st.Spec.Tenancy) {
				return
			}
			for _, key := range keys() {
				enqueue(key)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("failed to watch the SyncTarget for its tenancy allowances: %w", err)
	}
	return nil
}

// tenancy returns the allowances the chain applies.
func (c *specController) tenancyAllowances() workloadv1alpha1.SyncTargetTenancy {
	if c.tenancy == nil {
		return workloadv1alpha1.SyncTargetTenancy{}
	}
	return c.tenancy()
}

// reportDropped records a Warning Event on the upstream object after desired was applied
// without some of its fields, once per change of what was dropped: not when only other
// fields changed, not on a drift repair or a restart (the live copy already lists the same
// drops).
func (c *specController) reportDropped(req specRequest, upstreamObj, desired, downstreamObj *unstructured.Unstructured) {
	dropped := desired.GetAnnotations()[transform.DroppedFieldsAnnotation]
	if dropped == "" {
		return
	}
	if downstreamObj != nil && downstreamObj.GetAnnotations()[transform.DroppedFieldsAnnotation] == dropped {
		return
	}
	event(req.upstream, upstreamObj, corev1.EventTypeWarning, reasonFieldsDropped, fmt.Sprintf(
		"The copy on the physical cluster of SyncTarget %s was applied without %s: the cluster is shared with other tenants (external IPs and load-balancer IPs can be allowed in the SyncTarget's spec.tenancy)",
		c.target.name, strings.Join(transform.DroppedFields(desired), ", ")))
}
