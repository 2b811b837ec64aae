package syncer

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// upsyncDroppedMetadata is the metadata of a downstream object that describes its life
// downstream and never goes up.
var upsyncDroppedMetadata = []string{"uid", "resourceVersion", "managedFields", "ownerReferences", "generation", "creationTimestamp",
	"deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "finalizers"}

// upsyncedObject returns the upstream copy of downstreamObj in upstreamNamespace ("" for a
// cluster-scoped object): its downstream metadata dropped, the ownership label removed, the
// Upsync state label and the syncer's finalizer set, and UpsyncResourceVersionAnnotation
// recording the downstream resourceVersion it mirrors. A PersistentVolume (locator set)
// carries its claim's namespace locator, and its claimRef names the upstream namespace
// (without the downstream claim's uid and resourceVersion). The status is kept: the caller
// writes it through the status subresource.
func upsyncedObject(stKey string, downstreamObj *unstructured.Unstructured, upstreamNamespace string, pvLocator *workloadv1alpha1.NamespaceLocator) (*unstructured.Unstructured, error) {
	upstreamObj := downstreamObj.DeepCopy()
	for _, field := range upsyncDroppedMetadata {
		unstructured.RemoveNestedField(upstreamObj.Object, "metadata", field)
	}
	upstreamObj.SetNamespace(upstreamNamespace)
	labels := upstreamObj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	delete(labels, workloadv1alpha1.InternalDownstreamClusterLabel)
	labels[workloadv1alpha1.ClusterResourceStateLabel(stKey)] = workloadv1alpha1.ResourceStateUpsync
	upstreamObj.SetLabels(labels)
	annotations := upstreamObj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[workloadv1alpha1.UpsyncResourceVersionAnnotation] = downstreamObj.GetResourceVersion()
	if pvLocator != nil {
		value, err := pvLocator.MarshalAnnotation()
		if err != nil {
			return nil, fmt.Errorf("failed to encode the namespace locator of a PersistentVolume: %w", err)
		}
		annotations[workloadv1alpha1.NamespaceLocatorAnnotation] = value
		if _, found, _ := unstructured.NestedMap(upstreamObj.Object, "spec", "claimRef"); found {
			_ = unstructured.SetNestedField(upstreamObj.Object, pvLocator.Namespace, "spec", "claimRef", "namespace")
			unstructured.RemoveNestedField(upstreamObj.Object, "spec", "claimRef", "uid")
			unstructured.RemoveNestedField(upstreamObj.Object, "spec", "claimRef", "resourceVersion")
		}
	}
	upstreamObj.SetAnnotations(annotations)
	upstreamObj.SetFinalizers([]string{workloadv1alpha1.SyncerFinalizerName(stKey)})
	return upstreamObj, nil
}

// mergeUpstreamMetadata keeps on desired what the upstream copy holds and the downstream
// object cannot know: its resourceVersion (the update's precondition), the logical-cluster
// annotation and the finalizers of others.
func mergeUpstreamMetadata(desired, upstreamObj *unstructured.Unstructured) {
	desired.SetResourceVersion(upstreamObj.GetResourceVersion())
	desired.SetUID(upstreamObj.GetUID())
	if cluster, ok := upstreamObj.GetAnnotations()[logicalcluster.AnnotationKey]; ok {
		annotations := desired.GetAnnotations()
		annotations[logicalcluster.AnnotationKey] = cluster
		desired.SetAnnotations(annotations)
	}
	finalizers := desired.GetFinalizers()
	for _, f := range upstreamObj.GetFinalizers() {
		if f != finalizers[0] {
			finalizers = append(finalizers, f)
		}
	}
	desired.SetFinalizers(finalizers)
}

// withoutUpsyncFinalizer returns upstreamObj without finalizer, and whether it held it.
func withoutUpsyncFinalizer(upstreamObj *unstructured.Unstructured, finalizer string) (*unstructured.Unstructured, bool) {
	var kept []string
	held := false
	for _, f := range upstreamObj.GetFinalizers() {
		if f == finalizer {
			held = true
			continue
		}
		kept = append(kept, f)
	}
	if !held {
		return upstreamObj, false
	}
	out := upstreamObj.DeepCopy()
	out.SetFinalizers(kept)
	return out, true
}
