// Package transform turns an upstream object into the object the workload-syncer
// server-side-applies downstream, and decides whether a write is needed at all.
//
// It owns:
//   - the transformation chain (Chain, Filter, Transformer): the fixed metadata clean-up,
//     the built-in filters and transformers (service-account token secrets, every
//     namespace's kube-root-ca.crt and default ServiceAccount, a ConfigMap named kcp-root-ca.crt
//     (the syncer's copy of the hub CA), children of controllers that
//     also run downstream; label and annotation clean-up, per-target spec-diff,
//     downstream-owned fields, the Upsync state label on the pod templates of the built-in
//     workload types so that their Pods are upsynced) and the extension point (Chain.With,
//     Chain.WithFilter);
//   - NotSyncedReason, the built-in filters' rule for the tmc-controller's label
//     propagation, so that it never labels what the syncer refuses;
//   - tenant containment (ContainmentTransformer): the physical cluster is shared by every
//     workspace placed on it, so no field that names or takes over one of its cluster-level
//     resources goes down. The rules, each a drop (the copy is applied without the field,
//     DroppedFieldsAnnotation lists it, the syncer records a Warning Event on the upstream
//     object when the applied object changes):
//     Service spec.externalIPs and spec.loadBalancerIP unless the SyncTarget's
//     spec.tenancy allows them; PersistentVolumeClaim spec.volumeName and the bind
//     annotations (ClaimBindAnnotations), also in StatefulSet volumeClaimTemplates; pod
//     template spec.nodeName. Dropped fields are never owned by the syncer, so what the
//     physical cluster sets there (a binder's volumeName) is neither compared nor reverted.
//     Drop rather than reject: the workload still runs, as it would on a cluster whose
//     admission strips them, and the Event says what was left out.
//     Known limits (passed through; confine them downstream with admission, quota or
//     policy): priorityClassName (system-* classes are confined to kube-system by the
//     Priority admission plugin, others are not), runtimeClassName, storageClassName,
//     ingressClassName, tolerations and nodeSelector (use PodTolerationRestriction or
//     PodNodeSelector), Service type NodePort/LoadBalancer, externalName, hand-written
//     Endpoints/EndpointSlices if such types are synced (CVE-2021-25740), PVC
//     dataSourceRef across namespaces, and pod-level privileges (Pod Security Admission
//     on the downstream namespace);
//   - change detection for the spec leg (Hash, SetHash, NeedsApply), so that a restart with
//     N synced objects issues zero writes while drift downstream is still reverted;
//   - change detection for the status leg (StatusEqual, StatusForUpstream);
//   - the comparison behind the conflict policy AdoptIfEqual (AdoptionDifferences: does a
//     pre-existing downstream object already hold every field the syncer would apply);
//   - the error kinds the caller classifies: ErrFiltered (the object is not synced; not an
//     error for the user) and ErrInvalidInput (the user's annotations are wrong; not
//     retryable, worth an Event).
//
// Everything here is a pure function on *unstructured.Unstructured. The package must not
// import clients, informers, listers or the syncer package (pkg/reconciler/workload/syncer);
// the syncer imports it, never the other way round.
package transform
