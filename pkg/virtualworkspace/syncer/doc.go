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
// exactly that name, unfiltered by placement. Everything else is refused.
//
// It owns the request handling only; it must not import the syncer, the tmc-controller's
// reconcilers or anything under test/.
package syncer
