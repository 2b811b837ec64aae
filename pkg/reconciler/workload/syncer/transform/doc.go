// Package transform turns an upstream object into the object the workload-syncer
// server-side-applies downstream, and decides whether a write is needed at all.
//
// It owns:
//   - the transformation chain (Chain, Filter, Transformer): the fixed metadata clean-up,
//     the built-in filters and transformers (service-account token secrets, every
//     namespace's kube-root-ca.crt and default ServiceAccount, children of controllers that
//     also run downstream; label and annotation clean-up, per-target spec-diff,
//     downstream-owned fields) and the extension point (Chain.With, Chain.WithFilter);
//   - NotSyncedReason, the built-in filters' rule for the tmc-controller's label
//     propagation, so that it never labels what the syncer refuses;
//   - change detection for the spec leg (Hash, SetHash, NeedsApply), so that a restart with
//     N synced objects issues zero writes while drift downstream is still reverted;
//   - change detection for the status leg (StatusEqual, StatusForUpstream);
//   - the error kinds the caller classifies: ErrFiltered (the object is not synced; not an
//     error for the user) and ErrInvalidInput (the user's annotations are wrong; not
//     retryable, worth an Event).
//
// Everything here is a pure function on *unstructured.Unstructured. The package must not
// import clients, informers, listers or the syncer package (pkg/reconciler/workload/syncer);
// the syncer imports it, never the other way round.
package transform
