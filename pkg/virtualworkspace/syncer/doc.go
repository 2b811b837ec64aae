// Package syncer serves the syncer view of the virtual-workspace server: below
// /services/syncer/<location-cluster>/<synctarget>/<uid>/clusters/<cluster|*>/ each
// SyncTarget's syncer gets one authorised, filtered view of every workspace placed on it.
//
// A request is authenticated by a TokenReview and authorised by a SubjectAccessReview
// (verb sync on synctargets/<name>) in the location workspace, then forwarded to the
// upstream with the server's privileged identity, rewritten so that the syncer reaches only
// the objects labelled state.workload.kcp.io/<key>=Sync of the types its SyncTarget accepts,
// and writes only the metadata it owns for its key; status writes are stored per target and
// summarised into .status (pkg/virtualworkspace/summarize), and a release that takes a
// target out of the summary summarises the targets left. The kube-root-ca.crt ConfigMaps
// (the workspace's public CA bundle, for the syncer's hub CA copy) are listed and watched by
// exactly that name, unfiltered by placement. A request to the view's /tunnel
// (TunnelSubpath), admitted the same way, is handed to Options.Tunnel with the SyncTarget's
// key: the syncer's reverse tunnel. Everything else is refused.
//
// Its upstream client, reviewer and Status answers are exported (shared.go) for the
// server's other views to authenticate, authorise and answer as this one does.
//
// The same handler serves the upsyncer view below
// /services/upsyncer/<location-cluster>/<synctarget>/<uid>/clusters/<cluster|*>/
// (upsyncer.go, upsyncer_write.go), authenticated and authorised exactly as the syncer view,
// through which a syncer copies objects up from its physical cluster: pods, endpoints,
// endpointslices, persistentvolumes (cluster-scoped) and the types its SyncTarget accepts.
// Lists, watches and gets see only the objects labelled state.workload.kcp.io/<key>=Upsync;
// namespaces, read-only, only those placed on the target (label Sync). Creates, updates,
// JSON merge patches, status writes and deletes are served only for objects that carry
// this target's Upsync label before and after the write, with no other target's state
// label set, changed or removed, and are sent with the checked object's resourceVersion
// (and, for deletes, uid) as precondition; a namespaced create only in a namespace placed
// on the target. Status writes go straight to .status: an upsynced object has one source.
// Requests and watches are counted by view (Metrics).
//
// It owns the request handling only; it must not import the syncer, the tmc-controller's
// reconcilers or anything under test/.
package syncer
