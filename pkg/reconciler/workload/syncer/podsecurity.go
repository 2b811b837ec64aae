package syncer

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// The Pod Security Admission namespace labels (k8s.io/pod-security-admission/api).
const (
	podSecurityEnforceLabel        = "pod-security.kubernetes.io/enforce"
	podSecurityEnforceVersionLabel = "pod-security.kubernetes.io/enforce-version"
	podSecurityWarnLabel           = "pod-security.kubernetes.io/warn"
	podSecurityAuditLabel          = "pod-security.kubernetes.io/audit"
)

// operationLabelNamespace is the downstream write that brings a namespace's Pod Security
// Admission labels in line with the SyncTarget.
const operationLabelNamespace = "label_namespace"

// podSecurityLabels returns the Pod Security Admission labels of the downstream namespaces
// for the SyncTarget's spec.podSecurity (nil: the defaults). Nothing of the upstream
// namespace goes into them, so a tenant cannot lower the level.
func podSecurityLabels(podSecurity *workloadv1alpha1.PodSecurity) map[string]string {
	enforce, warn, audit := podSecurity.Levels()
	return map[string]string{
		podSecurityEnforceLabel:        string(enforce),
		podSecurityEnforceVersionLabel: "latest",
		podSecurityWarnLabel:           string(warn),
		podSecurityAuditLabel:          string(audit),
	}
}

// podSecurityLabels returns the labels the served SyncTarget asks for now.
func (m *namespaceManager) podSecurityLabels() map[string]string {
	if m.podSecurity == nil {
		return podSecurityLabels(nil)
	}
	return podSecurityLabels(m.podSecurity())
}

// ensurePodSecurity sets the Pod Security Admission labels of downstream namespace ns to
// want with a merge patch, only when one of them differs (a restart writes nothing). Labels
// set by hand downstream to other values are reverted.
func (m *namespaceManager) ensurePodSecurity(ctx context.Context, ns *corev1.Namespace, want map[string]string) error {
	changed := map[string]string{}
	for k, v := range want {
		if ns.Labels[k] != v {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": changed}})
	if err != nil {
		return fmt.Errorf("failed to encode the namespace pod security patch: %w", err)
	}
	if _, err := m.downstreamNamespaces.Patch(ctx, ns.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to set the pod security labels of downstream namespace %s: %w", ns.Name, err)
	}
	m.metrics.downstreamWrite(operationLabelNamespace)
	klog.FromContext(ctx).V(2).Info("Set pod security labels of downstream namespace", "downstreamNamespace", ns.Name, "labels", changed)
	return nil
}

// ensurePodSecurityAll brings the Pod Security Admission labels of every downstream
// namespace this target owns in line with the SyncTarget: after a change of
// spec.podSecurity, for namespaces created before the labels existed, and against a
// change made by hand downstream. It reads the namespace cache and writes only what
// differs; one failing namespace does not stop the others.
func (m *namespaceManager) ensurePodSecurityAll(ctx context.Context) error {
	lister := m.namespaceLister()
	if lister == nil {
		return nil
	}
	namespaces, err := lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("failed to list downstream namespaces: %w", err)
	}
	want := m.podSecurityLabels()
	var errs []error
	for _, ns := range namespaces {
		if ns.DeletionTimestamp != nil || ns.Labels[workloadv1alpha1.InternalDownstreamClusterLabel] != m.target.key {
			continue
		}
		if _, ok := m.locatorOf(ns.Name); !ok {
			continue
		}
		if err := m.ensurePodSecurity(ctx, ns, want); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("failed to set pod security labels on %d downstream namespaces, first: %w", len(errs), errs[0])
	}
	return nil
}
