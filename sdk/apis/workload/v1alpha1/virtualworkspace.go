package v1alpha1

import (
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// SyncerVirtualWorkspacePrefix is the path below which the virtual-workspace server serves
// the syncer view of each SyncTarget, as kcp's did:
// /services/syncer/<location-cluster>/<synctarget-name>/<synctarget-uid>/clusters/<cluster>/...
const SyncerVirtualWorkspacePrefix = "/services/syncer/"

// UpsyncerVirtualWorkspacePrefix is the path below which the virtual-workspace server serves
// the upsyncer view of each SyncTarget, laid out as the syncer view:
// /services/upsyncer/<location-cluster>/<synctarget-name>/<synctarget-uid>/clusters/<cluster>/...
// Only objects labelled state.workload.kcp.io/<key>=Upsync are seen, created, changed or
// deleted through it.
const UpsyncerVirtualWorkspacePrefix = "/services/upsyncer/"

// PodAccessVirtualWorkspacePrefix is the path below which the virtual-workspace server
// serves users their upsynced pods' log, exec, attach and portforward subresources, reached
// through the syncer's tunnel: /services/pods/clusters/<workspace>/api/v1/...; everything
// else below it is forwarded to the workspace with the caller's own credential, so that
// kubectl pointed at <server>/services/pods/clusters/<workspace> works unchanged.
const PodAccessVirtualWorkspacePrefix = "/services/pods/"

// TunnelSubpath, appended to a SyncTarget's syncer view URL, is where its syncer opens its
// reverse tunnel (authorised as the syncer view is: verb sync on synctargets/<name>).
const TunnelSubpath = "/tunnel"

// TunnelWorkspaceHeader names, on a request the server sends through a syncer's tunnel, the
// logical-cluster name of the workspace whose pod is asked for; the syncer serves it only
// from the downstream namespace whose locator names that workspace, that upstream namespace
// and its own SyncTarget.
const TunnelWorkspaceHeader = "X-Tmc-Workspace"

// SyncerVirtualWorkspaceURL returns the syncer view's base URL of the SyncTarget name (uid)
// in the location workspace whose logical-cluster name is locationCluster, on the
// virtual-workspace server at serverURL.
func SyncerVirtualWorkspaceURL(serverURL, locationCluster, name string, uid types.UID) string {
	return strings.TrimSuffix(serverURL, "/") + SyncerVirtualWorkspacePrefix + locationCluster + "/" + name + "/" + string(uid)
}

// UpsyncerVirtualWorkspaceURL returns the upsyncer view's base URL of the SyncTarget, as
// SyncerVirtualWorkspaceURL does for the syncer view.
func UpsyncerVirtualWorkspaceURL(serverURL, locationCluster, name string, uid types.UID) string {
	return strings.TrimSuffix(serverURL, "/") + UpsyncerVirtualWorkspacePrefix + locationCluster + "/" + name + "/" + string(uid)
}

// SyncerVirtualWorkspacePath is a request path of the syncer view, split (not an API type).
// +k8s:deepcopy-gen=false
type SyncerVirtualWorkspacePath struct {
	LocationCluster string
	SyncTargetName  string
	SyncTargetUID   types.UID
	// Rest is the remainder of the path, starting with "/" ("" if there is none), e.g.
	// /clusters/*/api/v1/namespaces.
	Rest string
}

// ParseSyncerVirtualWorkspacePath splits a request path below SyncerVirtualWorkspacePrefix;
// ok is false when the path is not one (or a segment is empty).
func ParseSyncerVirtualWorkspacePath(path string) (SyncerVirtualWorkspacePath, bool) {
	return parseTargetPath(path, SyncerVirtualWorkspacePrefix)
}

// ParseUpsyncerVirtualWorkspacePath splits a request path below
// UpsyncerVirtualWorkspacePrefix, as ParseSyncerVirtualWorkspacePath does.
func ParseUpsyncerVirtualWorkspacePath(path string) (SyncerVirtualWorkspacePath, bool) {
	return parseTargetPath(path, UpsyncerVirtualWorkspacePrefix)
}

func parseTargetPath(path, prefix string) (SyncerVirtualWorkspacePath, bool) {
	tail, found := strings.CutPrefix(path, prefix)
	if !found {
		return SyncerVirtualWorkspacePath{}, false
	}
	parts := strings.SplitN(tail, "/", 4)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return SyncerVirtualWorkspacePath{}, false
	}
	p := SyncerVirtualWorkspacePath{LocationCluster: parts[0], SyncTargetName: parts[1], SyncTargetUID: types.UID(parts[2])}
	if len(parts) == 4 {
		p.Rest = "/" + parts[3]
	}
	return p, true
}
