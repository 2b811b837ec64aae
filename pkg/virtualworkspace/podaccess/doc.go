// Package podaccess serves users' pod access in the virtual-workspace server, below
// /services/pods/clusters/<workspace>/ (PodAccessVirtualWorkspacePrefix; the workspace by
// logical-cluster name or path, as the upstream accepts both).
//
// The pod subresources log, exec, attach and portforward of
// /api/v1/namespaces/<ns>/pods/<pod>/ are authenticated (TokenReview) and authorised
// (SubjectAccessReview: get pods/log, create pods/exec|attach|portforward) in that
// workspace with the server's identity, the pod is read there, and the request goes
// through the reverse tunnel of the first SyncTarget (by key, sorted) that upsyncs the pod
// (state.workload.kcp.io/<key>=Upsync) and has a tunnel open: as plain HTTP/1.1 with
// upgrades passed through, the workspace's logical-cluster name in X-Tmc-Workspace and no
// credential of the caller. Everything else below the prefix is forwarded to the upstream's
// /clusters/<workspace>/ with the caller's own Authorization and no credential of the
// server, so that kubectl pointed at the view reads pods and discovery as usual.
//
// It owns the request handling only; the tunnels are reached through the Dialer interface
// (pkg/tunnel's Registry). It must not import the syncer, the tmc-controller's reconcilers
// or anything under test/.
package podaccess
