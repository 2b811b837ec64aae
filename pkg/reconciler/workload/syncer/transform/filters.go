package transform

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The rules in this file are shared by the syncer (as the built-in filters of DefaultChain)
// and by the tmc-controller's label propagation (NotSyncedReason), so that an object the
// controller never labels is also refused by the syncer when labelled by hand.

// BuiltinFilters returns the built-in filters of DefaultChain, in order.
func BuiltinFilters() []Filter {
	return []Filter{ServiceAccountTokenSecretFilter{}, SystemObjectFilter{}, BuiltinControllerChildFilter{}}
}

// NotSyncedReason returns why a built-in filter refuses upstream, or "" when none does.
func NotSyncedReason(upstream *unstructured.Unstructured) string {
	for _, reason := range []func(*unstructured.Unstructured) string{serviceAccountTokenReason, systemObjectReason, builtinControllerChildReason} {
		if r := reason(upstream); r != "" {
			return r
		}
	}
	return ""
}

// ServiceAccountTokenSecretFilter refuses v1 Secrets of type
// kubernetes.io/service-account-token. Their tokens are minted for the upstream service
// account; the downstream apiserver would reject them or its token controller would rewrite
// or delete them.
type ServiceAccountTokenSecretFilter struct{}

// Name implements Filter.
func (ServiceAccountTokenSecretFilter) Name() string { return "service-account-token-secret" }

// Filter implements Filter.
func (ServiceAccountTokenSecretFilter) Filter(_ context.Context, _ Context, upstream *unstructured.Unstructured) (bool, string) {
	return refuseIf(serviceAccountTokenReason(upstream))
}

func serviceAccountTokenReason(upstream *unstructured.Unstructured) string {
	if !isCore(upstream, "Secret") {
		return ""
	}
	secretType, _, _ := unstructured.NestedString(upstream.Object, "type")
	if secretType == string(corev1.SecretTypeServiceAccountToken) {
		return "secrets of type " + secretType + " are owned by the downstream cluster's token controller"
	}
	return ""
}

// RootCAConfigMapName is the ConfigMap the root-CA publisher of every Kubernetes control
// plane (kcp's per logical cluster included) keeps in every namespace.
const RootCAConfigMapName = "kube-root-ca.crt"

// HubCAConfigMapName is the ConfigMap in which the syncer publishes the hub's CA (the
// upstream namespace's kube-root-ca.crt) in every downstream namespace, as kcp's TMC did.
// The name is the syncer's: an upstream ConfigMap of that name is never synced.
const HubCAConfigMapName = "kcp-root-ca.crt"

// DefaultServiceAccountName is the ServiceAccount the service-account controller keeps in
// every namespace.
const DefaultServiceAccountName = "default"

// SystemObjectFilter refuses the objects a control plane's own controllers keep in every
// namespace: the kube-root-ca.crt ConfigMap and the default ServiceAccount. The physical
// cluster has its own of each in the downstream namespace; syncing the hub's would either
// conflict in every namespace or replace the physical cluster's CA bundle with the hub's.
// It also refuses an upstream ConfigMap named kcp-root-ca.crt: downstream that name holds
// the hub's CA, which the syncer publishes itself.
type SystemObjectFilter struct{}

// Name implements Filter.
func (SystemObjectFilter) Name() string { return "per-namespace-system-object" }

// Filter implements Filter.
func (SystemObjectFilter) Filter(_ context.Context, _ Context, upstream *unstructured.Unstructured) (bool, string) {
	return refuseIf(systemObjectReason(upstream))
}

func systemObjectReason(upstream *unstructured.Unstructured) string {
	switch {
	case isCore(upstream, "ConfigMap") && upstream.GetName() == RootCAConfigMapName:
		return "the ConfigMap " + RootCAConfigMapName + " is published in every namespace by each cluster's root-CA publisher; the physical cluster keeps its own"
	case isCore(upstream, "ConfigMap") && upstream.GetName() == HubCAConfigMapName:
		return "the ConfigMap " + HubCAConfigMapName + " is where the syncer publishes the hub's CA downstream"
	case isCore(upstream, "ServiceAccount") && upstream.GetName() == DefaultServiceAccountName:
		return "the ServiceAccount " + DefaultServiceAccountName + " is created in every namespace by each cluster's service-account controller; the physical cluster keeps its own"
	}
	return ""
}

// builtinControllerKinds are the kinds whose controllers run in kube-controller-manager,
// hence on every physical cluster too: what they create upstream (on a hub running
// kube-controller-manager) their downstream twins create downstream from the synced
// parent, so a synced child would run twice (the Jobs of a CronJob) or fight the
// downstream controller (the ReplicaSets of a Deployment, a StatefulSet's claims, the
// EndpointSlices of a Service).
var builtinControllerKinds = map[schema.GroupKind]bool{
	{Group: "apps", Kind: "Deployment"}:  true,
	{Group: "apps", Kind: "ReplicaSet"}:  true,
	{Group: "apps", Kind: "StatefulSet"}: true,
	{Group: "apps", Kind: "DaemonSet"}:   true,
	{Group: "batch", Kind: "Job"}:        true,
	{Group: "batch", Kind: "CronJob"}:    true,
	{Kind: "ReplicationController"}:      true,
	{Kind: "Service"}:                    true,
	{Kind: "Pod"}:                        true,
	{Kind: "Node"}:                       true,
}

// BuiltinControllerChildFilter refuses objects whose controller (the ownerReference with
// controller: true) is of a kind a kube-controller-manager controller manages
// (builtinControllerKinds). Children of other controllers — an operator running against
// the hub — are synced: that controller does not run on the physical cluster, and syncing
// its output is how the output gets there.
type BuiltinControllerChildFilter struct{}

// Name implements Filter.
func (BuiltinControllerChildFilter) Name() string { return "builtin-controller-child" }

// Filter implements Filter.
func (BuiltinControllerChildFilter) Filter(_ context.Context, _ Context, upstream *unstructured.Unstructured) (bool, string) {
	return refuseIf(builtinControllerChildReason(upstream))
}

func builtinControllerChildReason(upstream *unstructured.Unstructured) string {
	for _, ref := range upstream.GetOwnerReferences() {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			continue
		}
		if builtinControllerKinds[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}] {
			return fmt.Sprintf("it is controlled by %s %s, whose controller runs on the physical cluster too and creates its own", ref.Kind, ref.Name)
		}
	}
	return ""
}

// isCore reports whether obj is a core v1 object of kind.
func isCore(obj *unstructured.Unstructured, kind string) bool {
	gvk := obj.GroupVersionKind()
	return gvk.Group == "" && gvk.Version == "v1" && gvk.Kind == kind
}

// refuseIf turns a refusal reason into a Filter result.
func refuseIf(reason string) (bool, string) { return reason == "", reason }
