package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// Event reasons of the conflict policy, and how many differing fields a message names.
const (
	adoptedEventReason               = "Adopted"
	invalidConflictPolicyEventReason = "InvalidConflictPolicy"
	reportedDifferences              = 3
)

// syncTargetConflictPolicy returns the SyncTarget's spec.conflictPolicy as the cache holds
// it ("" while the SyncTarget is not in the cache: Abort).
func syncTargetConflictPolicy(lister workloadlisters.SyncTargetLister, name string) func() workloadv1alpha1.ConflictPolicy {
	return func() workloadv1alpha1.ConflictPolicy {
		st, err := lister.Get(name)
		if err != nil {
			return ""
		}
		return st.Spec.ConflictPolicy
	}
}

// resolveConflict handles downstreamObj, which exists where upstreamObj's copy goes but
// without our ownership label, by the conflict policy: Abort leaves it untouched and
// reports a ResourceConflict; AdoptIfEqual takes ownership only when it already holds
// every field desired sets; Overwrite takes ownership and applies. Whatever the policy,
// nothing is adopted that another SyncTarget owns, that is being deleted, or that lies in
// a downstream namespace that is not ours: those stay conflicts.
func (c *specController) resolveConflict(ctx context.Context, req specRequest, upstreamObj, desired, downstreamObj *unstructured.Unstructured) error {
	policy := c.conflictPolicy(req, upstreamObj)
	if policy == workloadv1alpha1.ConflictPolicyAbort {
		return c.conflict(ctx, req, upstreamObj, policy, "")
	}
	if why := c.notAdoptable(req, downstreamObj); why != "" {
		return c.conflict(ctx, req, upstreamObj, policy, why)
	}
	if policy == workloadv1alpha1.ConflictPolicyAdoptIfEqual {
		if diffs := transform.AdoptionDifferences(desired, downstreamObj, reportedDifferences+1); len(diffs) > 0 {
			return c.conflict(ctx, req, upstreamObj, policy, "its fields differ from the upstream object's at "+listDifferences(diffs))
		}
	}
	return c.adopt(ctx, req, upstreamObj, desired, downstreamObj, policy)
}

// conflictPolicy returns the policy for upstreamObj's copy: its ConflictPolicyAnnotation,
// else the SyncTarget's spec.conflictPolicy, else Abort. An annotation that names no
// policy means Abort, with a Warning Event: a typo must never adopt or overwrite.
func (c *specController) conflictPolicy(req specRequest, upstreamObj *unstructured.Unstructured) workloadv1alpha1.ConflictPolicy {
	if value := upstreamObj.GetAnnotations()[workloadv1alpha1.ConflictPolicyAnnotation]; value != "" {
		if policy, ok := workloadv1alpha1.ParseConflictPolicy(value); ok {
			return policy
		}
		event(req.upstream, upstreamObj, corev1.EventTypeWarning, invalidConflictPolicyEventReason, fmt.Sprintf(
			"%s=%q is not one of %s, %s, %s; TMC treats it as %s and leaves a pre-existing object in the physical cluster of SyncTarget %s untouched",
			workloadv1alpha1.ConflictPolicyAnnotation, value, workloadv1alpha1.ConflictPolicyAbort, workloadv1alpha1.ConflictPolicyAdoptIfEqual,
			workloadv1alpha1.ConflictPolicyOverwrite, workloadv1alpha1.ConflictPolicyAbort, c.target.name))
		return workloadv1alpha1.ConflictPolicyAbort
	}
	if c.targetConflictPolicy != nil {
		if policy, ok := workloadv1alpha1.ParseConflictPolicy(string(c.targetConflictPolicy())); ok {
			return policy
		}
	}
	return workloadv1alpha1.ConflictPolicyAbort
}

// notAdoptable says why downstreamObj must not be adopted whatever the policy, or "".
// The namespace is checked again here, not only trusted from the namespace ensure before:
// it must be the one computed from the upstream namespace's locator, carry that locator
// and our ownership label.
func (c *specController) notAdoptable(req specRequest, downstreamObj *unstructured.Unstructured) string {
	if owner := downstreamObj.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; owner != "" {
		return fmt.Sprintf("another SyncTarget owns it (%s=%s)", workloadv1alpha1.InternalDownstreamClusterLabel, owner)
	}
	if downstreamObj.GetDeletionTimestamp() != nil {
		return "it is being deleted"
	}
	if downstreamObj.GetNamespace() != req.downstreamNamespace {
		return fmt.Sprintf("it is in namespace %q, not in %s", downstreamObj.GetNamespace(), req.downstreamNamespace)
	}
	var lister corelisters.NamespaceLister
	if c.downstreamNamespaces != nil {
		lister = c.downstreamNamespaces()
	}
	return notOurNamespace(lister, c.target.key, req.locator, req.downstreamNamespace)
}

// notOurNamespace says why downstreamNamespace is not the namespace of locator owned by
// the SyncTarget with key stKey, or "".
func notOurNamespace(lister corelisters.NamespaceLister, stKey string, locator workloadv1alpha1.NamespaceLocator, downstreamNamespace string) string {
	if !locator.IsDownstreamNamespaceName(downstreamNamespace) {
		return fmt.Sprintf("namespace %s is not the one computed for upstream namespace %s", downstreamNamespace, locator.Namespace)
	}
	if lister == nil {
		return "downstream namespaces are not watched yet"
	}
	ns, err := lister.Get(downstreamNamespace)
	if err != nil {
		return fmt.Sprintf("namespace %s is not in the cache", downstreamNamespace)
	}
	if ns.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != stKey {
		return fmt.Sprintf("namespace %s does not carry %s=%s", downstreamNamespace, workloadv1alpha1.InternalDownstreamClusterLabel, stKey)
	}
	if got, err := workloadv1alpha1.ParseNamespaceLocator(ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation]); err != nil || got != locator {
		return fmt.Sprintf("namespace %s carries another namespace locator", downstreamNamespace)
	}
	return ""
}

// adopt takes ownership of downstreamObj by applying desired over it (ownership label,
// spec hash and field ownership, as for a copy the syncer created). The apply carries the
// resourceVersion that was compared: an object changed since fails with a conflict and is
// looked at again, never adopted unseen.
func (c *specController) adopt(ctx context.Context, req specRequest, upstreamObj, desired, downstreamObj *unstructured.Unstructured, policy workloadv1alpha1.ConflictPolicy) error {
	guarded := desired.DeepCopy()
	guarded.SetResourceVersion(downstreamObj.GetResourceVersion())
	if err := c.apply(ctx, req, upstreamObj, guarded, downstreamObj); err != nil {
		return err
	}
	c.metrics.adoptions.WithLabelValues(c.metrics.clusterName, string(policy)).Inc()
	event(req.upstream, upstreamObj, corev1.EventTypeNormal, adoptedEventReason, fmt.Sprintf(
		"Conflict policy %s: TMC took ownership of the existing %s %s/%s in the physical cluster of SyncTarget %s",
		policy, req.resource.kind, req.downstreamNamespace, req.key.name, c.target.name))
	klog.FromContext(ctx).V(2).Info("Adopted pre-existing downstream object", "conflictPolicy", policy)
	return nil
}

// conflict reports a downstream object that exists without our ownership label and is left
// untouched (why says why the policy did not adopt it; "" for Abort): the user learns
// about it from an Event, the conflict metric and the SyncTarget's error summary.
func (c *specController) conflict(ctx context.Context, req specRequest, upstreamObj *unstructured.Unstructured, policy workloadv1alpha1.ConflictPolicy, why string) error {
	msg := fmt.Sprintf("%s %s/%s already exists in the physical cluster of SyncTarget %s without the label %s=%s; TMC leaves it untouched",
		req.resource.kind, req.downstreamNamespace, req.key.name, c.target.name, workloadv1alpha1.InternalDownstreamClusterLabel, c.target.key)
	if why != "" {
		msg += fmt.Sprintf(" (conflict policy %s: not adopted because %s)", policy, why)
	} else {
		msg += fmt.Sprintf(". Delete or label it, or set the conflict policy (%s or the SyncTarget's spec.conflictPolicy) to %s or %s to let TMC manage it.",
			workloadv1alpha1.ConflictPolicyAnnotation, workloadv1alpha1.ConflictPolicyAdoptIfEqual, workloadv1alpha1.ConflictPolicyOverwrite)
	}
	event(req.upstream, upstreamObj, corev1.EventTypeWarning, "ResourceConflict", msg)
	c.metrics.conflicts.WithLabelValues(c.metrics.clusterName, req.key.workspace, req.resource.label()).Inc()
	klog.FromContext(ctx).V(2).Info("Downstream object exists without our ownership label; leaving it alone", "conflictPolicy", policy, "reason", why)
	return tmc.NewTMCError(tmc.TMCErrorTypeResourceConflict, errors.New(msg), "downstream object not owned by TMC", tmc.TMCErrorSeverityMedium).
		WithResource(req.key.gvr.Resource + " " + req.key.upstreamNamespace + "/" + req.key.name).WithWorkspace(req.key.workspace)
}

// listDifferences names the first reportedDifferences paths, and says if there are more.
func listDifferences(paths []string) string {
	if len(paths) <= reportedDifferences {
		return strings.Join(paths, ", ")
	}
	return strings.Join(paths[:reportedDifferences], ", ") + " and more"
}
