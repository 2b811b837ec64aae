// Package pods implements `kubectl tmc logs`, `kubectl tmc exec` and `kubectl tmc
// port-forward`: kubectl's own commands (k8s.io/kubectl), with all of their flags, whose
// server URL is rewritten from the current workspace (<server>/clusters/<workspace>) to the
// virtual-workspace server's pod-access view, <vw>/services/pods/clusters/<workspace>. The
// view sends pod subresources through the syncer's tunnel to the physical cluster and
// forwards everything else to the workspace with the caller's own credential.
//
// <vw> is --virtual-workspace-url or, when that is absent, the server part (everything before
// /services/) of the first status.virtualWorkspaces[].syncerURL of the SyncTargets of the
// current workspace, in name order.
//
// It may import cli-runtime, k8s.io/kubectl's commands and the project's API and client
// packages; never controller code or pkg/localenv.
package pods
