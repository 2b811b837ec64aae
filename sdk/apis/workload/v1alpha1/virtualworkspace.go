package v1alpha1

import (
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// SyncerVirtualWorkspacePrefix is the path below which the virtual-workspace server serves
// the syncer view of each SyncTarget, as kcp's did:
// /services/syncer/<location-cluster>/<synctarget-name>/<synctarget-uid>/clusters/<cluster>/...
const SyncerVirtualWorkspacePrefix = "/services/syncer/"

// SyncerVirtualWorkspaceURL returns the syncer view's base URL of the SyncTarget name (uid)
// in the location workspace whose logical-cluster name is locationCluster, on the
// virtual-workspace server at serverURL.
func SyncerVirtualWorkspaceURL(serverURL, locationCluster, name string, uid types.UID) string {
	return strings.TrimSuffix(serverURL, "/") + SyncerVirtualWorkspacePrefix + locationCluster + "/" + name + "/" + string(uid)
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
	tail, found := strings.CutPrefix(path, SyncerVirtualWorkspacePrefix)
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
