package transform

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// internalPrefix is the prefix of the keys the syncer itself sets downstream (ownership
// label, spec hash). Upstream objects have no business setting them.
const internalPrefix = "internal.workload.kcp.io/"

// strippedAnnotations are removed from every downstream object: they describe the object's
// life upstream, or are policies this package consumes.
var strippedAnnotations = map[string]bool{
	logicalcluster.AnnotationKey:                true,
	corev1.LastAppliedConfigAnnotation:          true,
	DownstreamOwnedFieldsAnnotation:             true,
	workloadv1alpha1.NamespaceLocatorAnnotation: true, // the syncer sets its own
}

// strippedAnnotationPrefixes are per-target annotations, removed for every target (not only
// this one): another target's spec-diff or status must not leak to this cluster.
var strippedAnnotationPrefixes = []string{
	workloadv1alpha1.InternalClusterDeletionTimestampAnnotationPrefix,
	workloadv1alpha1.ClusterFinalizerAnnotationPrefix,
	workloadv1alpha1.ClusterSpecDiffAnnotationPrefix,
	workloadv1alpha1.InternalClusterStatusAnnotationPrefix,
	internalPrefix,
}

// MetadataTransformer cleans labels and annotations: every state.workload.kcp.io/* label
// is removed (they select upstream objects, for every target) and the ownership label
// internal.workload.kcp.io/cluster=<stKey> is added; the kcp.io/cluster annotation, the
// per-target deletion, soft-finalizer, spec-diff and status annotations (for every target),
// kubectl's last-applied-configuration, the downstream-owned-fields policy, the namespace
// locator and any internal.workload.kcp.io/* annotation are removed.
type MetadataTransformer struct{}

// Name implements Transformer.
func (MetadataTransformer) Name() string { return "metadata" }

// TransformDown implements Transformer.
func (MetadataTransformer) TransformDown(_ context.Context, tc Context, _, downstream *unstructured.Unstructured) error {
	labels := downstream.GetLabels()
	for k := range labels {
		if strings.HasPrefix(k, workloadv1alpha1.ClusterResourceStateLabelPrefix) || strings.HasPrefix(k, internalPrefix) {
			delete(labels, k)
		}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	labels[workloadv1alpha1.InternalDownstreamClusterLabel] = tc.SyncTargetKey
	setLabels(downstream, labels)

	annotations := downstream.GetAnnotations()
	for k := range annotations {
		if strippedAnnotations[k] || hasAnyPrefix(k, strippedAnnotationPrefixes) {
			delete(annotations, k)
		}
	}
	setAnnotations(downstream, annotations)
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
