package transform

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// DroppedFieldsAnnotation on a downstream object lists, comma-separated and sorted, the
// fields ContainmentTransformer left out of it. It is part of the applied object (and of its
// hash), so the syncer reports a drop when the applied object changes, never on a restart
// or a drift repair, and a physical-cluster admin sees on the copy what was left out.
const DroppedFieldsAnnotation = internalPrefix + "dropped-fields"

// ClaimBindAnnotations are the annotations the persistent-volume controller and the
// scheduler set on a PersistentVolumeClaim while binding it. They describe a binding in
// one cluster; copied down they would let a tenant claim a volume or pick a provisioner.
var ClaimBindAnnotations = []string{
	"pv.kubernetes.io/bind-completed",
	"pv.kubernetes.io/bound-by-controller",
	"volume.beta.kubernetes.io/storage-provisioner",
	"volume.kubernetes.io/storage-provisioner",
	"volume.kubernetes.io/selected-node",
}

// ContainmentTransformer drops the fields through which a tenant could name or take over a
// cluster-level resource of the physical cluster, which every workspace placed on it shares:
//
//   - v1 Service: spec.externalIPs (CVE-2020-8554: intercept traffic to any address) unless
//     the SyncTarget sets spec.tenancy.allowExternalIPs, and spec.loadBalancerIP (ask for an
//     address reserved for someone else) unless it sets spec.tenancy.allowLoadBalancerIP;
//   - v1 PersistentVolumeClaim: spec.volumeName (bind someone else's Available
//     PersistentVolume) and ClaimBindAnnotations, always;
//   - apps/v1 StatefulSet: the same in every spec.volumeClaimTemplates[], always;
//   - pod templates (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
//     ReplicationController): spec.nodeName, which bypasses the scheduler and so the
//     taints that keep pods off dedicated nodes, always.
//
// The copy is applied without them and DroppedFieldsAnnotation lists what was dropped;
// fields that were empty anyway are removed silently. Dropped fields are never owned by the
// syncer, so whatever the physical cluster sets there (the binder's volumeName, the
// scheduler's selected node) is neither compared nor reverted.
type ContainmentTransformer struct{}

// Name implements Transformer.
func (ContainmentTransformer) Name() string { return "containment" }

// TransformDown implements Transformer.
func (ContainmentTransformer) TransformDown(_ context.Context, tc Context, _, downstream *unstructured.Unstructured) error {
	var dropped []string
	gvk := downstream.GroupVersionKind()
	switch {
	case gvk.Group == "" && gvk.Kind == "Service":
		dropped = containService(downstream.Object, tc.Tenancy)
	case gvk.Group == "" && gvk.Kind == "PersistentVolumeClaim":
		dropped = containClaim(downstream.Object, "")
	case gvk.Group == "apps" && gvk.Kind == "StatefulSet":
		dropped = containClaimTemplates(downstream.Object)
	}
	if path := podSpecPath(gvk); path != nil {
		if spec, ok := nestedMap(downstream.Object, path...); ok && dropField(spec, "nodeName") {
			dropped = append(dropped, strings.Join(path, ".")+".nodeName")
		}
	}
	recordDropped(downstream, dropped)
	return nil
}

// DroppedFields returns the fields listed in obj's DroppedFieldsAnnotation.
func DroppedFields(obj *unstructured.Unstructured) []string {
	value := obj.GetAnnotations()[DroppedFieldsAnnotation]
	if value == "" {
		return nil
	}
	return strings.Split(value, ",")
}

func containService(obj map[string]any, tenancy workloadv1alpha1.SyncTargetTenancy) []string {
	spec, ok := obj["spec"].(map[string]any)
	if !ok {
		return nil
	}
	var dropped []string
	if !tenancy.AllowExternalIPs && dropField(spec, "externalIPs") {
		dropped = append(dropped, "spec.externalIPs")
	}
	if !tenancy.AllowLoadBalancerIP && dropField(spec, "loadBalancerIP") {
		dropped = append(dropped, "spec.loadBalancerIP")
	}
	return dropped
}

// containClaim drops the volume name and bind annotations of a claim (or claim template)
// whose fields are reported under prefix.
func containClaim(claim map[string]any, prefix string) []string {
	var dropped []string
	if spec, ok := claim["spec"].(map[string]any); ok && dropField(spec, "volumeName") {
		dropped = append(dropped, prefix+"spec.volumeName")
	}
	annotations, ok := nestedMap(claim, "metadata", "annotations")
	if !ok {
		return dropped
	}
	for _, a := range ClaimBindAnnotations {
		if _, has := annotations[a]; has {
			delete(annotations, a)
			dropped = append(dropped, prefix+"metadata.annotations["+a+"]")
		}
	}
	if len(annotations) == 0 {
		unstructured.RemoveNestedField(claim, "metadata", "annotations")
	}
	return dropped
}

func containClaimTemplates(obj map[string]any) []string {
	templates, found, err := unstructured.NestedFieldNoCopy(obj, "spec", "volumeClaimTemplates")
	list, ok := templates.([]any)
	if err != nil || !found || !ok {
		return nil
	}
	var dropped []string
	for i, t := range list {
		if claim, ok := t.(map[string]any); ok {
			dropped = append(dropped, containClaim(claim, "spec.volumeClaimTemplates["+strconv.Itoa(i)+"].")...)
		}
	}
	return dropped
}

// podSpecPath returns where the pod spec of a built-in workload type is, nil for other
// types.
func podSpecPath(gvk schema.GroupVersionKind) []string {
	switch {
	case gvk.Group == "" && gvk.Kind == "Pod":
		return []string{"spec"}
	case gvk.Group == "" && gvk.Kind == "ReplicationController",
		gvk.Group == "apps" && slices.Contains([]string{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}, gvk.Kind),
		gvk.Group == "batch" && gvk.Kind == "Job":
		return []string{"spec", "template", "spec"}
	case gvk.Group == "batch" && gvk.Kind == "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	return nil
}

// dropField deletes m[key] and reports whether it held something other than a zero value.
func dropField(m map[string]any, key string) bool {
	v, ok := m[key]
	if !ok {
		return false
	}
	delete(m, key)
	return !isZero(v)
}

func nestedMap(obj map[string]any, path ...string) (map[string]any, bool) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	m, ok := v.(map[string]any)
	return m, err == nil && found && ok
}

// recordDropped sets DroppedFieldsAnnotation to the sorted list, or removes it when
// nothing was dropped (so that no upstream value survives either).
func recordDropped(downstream *unstructured.Unstructured, dropped []string) {
	annotations := downstream.GetAnnotations()
	if len(dropped) == 0 {
		if _, ok := annotations[DroppedFieldsAnnotation]; ok {
			delete(annotations, DroppedFieldsAnnotation)
			setAnnotations(downstream, annotations)
		}
		return
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	slices.Sort(dropped)
	annotations[DroppedFieldsAnnotation] = strings.Join(dropped, ",")
	downstream.SetAnnotations(annotations)
}
