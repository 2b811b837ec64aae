package v1alpha1

// Condition type and reasons of the syncer's confinement on its physical cluster: the
// ValidatingAdmissionPolicy and binding that `kubectl tmc workload sync` generates keep the
// syncer's credential to the namespaces it owns, whatever its RBAC allows. The syncer checks
// them at start and with every heartbeat; it keeps syncing when they are missing, but says
// so here, with a Warning Event on the SyncTarget and the syncer_confined metric.
const (
	// SyncTargetSyncerConfined is True while the admission policy and its binding exist,
	// as generated, and confine the syncer's own user.
	SyncTargetSyncerConfined = "SyncerConfined"

	// ReasonSyncerConfined: the policy and its binding are in place.
	ReasonSyncerConfined = "Confined"
	// ReasonPolicyMissing: the ValidatingAdmissionPolicy does not exist (or the physical
	// cluster does not serve admissionregistration.k8s.io/v1 policies, before Kubernetes
	// 1.30), or it no longer confines the syncer's user as generated.
	ReasonPolicyMissing = "PolicyMissing"
	// ReasonBindingMissing: the ValidatingAdmissionPolicyBinding does not exist, or it does
	// not bind the policy with the Deny action to every request as generated.
	ReasonBindingMissing = "BindingMissing"
	// ReasonConfinementNotVerifiable: the syncer may not read the policy or its binding
	// (or may not learn its own user name), so it cannot tell.
	ReasonConfinementNotVerifiable = "NotVerifiable"
)
