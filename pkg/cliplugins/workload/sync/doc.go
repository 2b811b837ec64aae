// Package sync implements `kubectl tmc workload sync <name>`: it registers a physical
// cluster with TMC. In the current (location) workspace it creates or updates the SyncTarget
// and a ServiceAccount whose RBAC is scoped to that one SyncTarget, mints a token for it, and
// writes the manifest to apply to the physical cluster: the syncer's namespace, identity,
// least-privilege RBAC, a ValidatingAdmissionPolicy that confines the syncer to the
// namespaces it owns, the upstream kubeconfig and the Deployment. The upstream kubeconfig
// embeds the current connection's CA; a connection that skips TLS verification is refused
// unless --syncer-insecure-skip-tls-verify allows copying it. The token lives
// --token-lifetime; re-running the command rotates it.
//
// On kcp the syncer reaches the workload workspaces through the virtual-workspace server,
// authorized by the verb sync on its SyncTarget, and the manifest's header asks for nothing
// in them; with --direct-workspace-access (a kcp without that server: the syncer then runs
// with --upstream-mode=direct), and always on a plain hub, the header carries the RBAC to
// create in every workload workspace (header.go).
//
// The syncer's permissions themselves (RBAC on both sides, the admission policy) live in
// the syncerrbac subpackage, so that pkg/localenv grants exactly the same ones without
// importing this command. DownstreamManifests and Render are exported so that integration tests can apply exactly
// what the command writes. The package talks to the upstream through client-go and the
// generated TMC clientset only; it must not import controller code (pkg/reconciler/...) or
// the syncer's command packages (its tests do, to check that the Deployment's arguments
// parse with the syncer's own flags).
package sync
