package v1alpha1

import (
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// Label, annotation and finalizer keys, kept compatible with kcp TMC. Most are built per
// SyncTarget from its key (see ToSyncTargetKey); use the functions below.
const (
	// ClusterResourceStateLabelPrefix + stKey is the per-target state label on upstream
	// objects and namespaces: "Sync", "Upsync" or "" (pending).
	ClusterResourceStateLabelPrefix = "state.workload.kcp.io/"

	// SyncerFinalizerNamePrefix + stKey is the finalizer the syncer holds on an upstream
	// object until its downstream copy is gone.
	SyncerFinalizerNamePrefix = "workload.kcp.io/syncer-"

	// InternalClusterDeletionTimestampAnnotationPrefix + stKey requests the removal of the
	// object from that target (RFC3339 time).
	InternalClusterDeletionTimestampAnnotationPrefix = "deletion.internal.workload.kcp.io/"

	// ClusterFinalizerAnnotationPrefix + stKey holds a comma-separated list of soft
	// finalizers that delay the downstream deletion for that target.
	ClusterFinalizerAnnotationPrefix = "finalizers.workload.kcp.io/"

	// ClusterSpecDiffAnnotationPrefix + stKey holds a JSON patch applied to .spec for that
	// target.
	ClusterSpecDiffAnnotationPrefix = "experimental.spec-diff.workload.kcp.io/"

	// InternalClusterStatusAnnotationPrefix + stKey holds the per-target status when an
	// object runs on several targets.
	InternalClusterStatusAnnotationPrefix = "experimental.status.workload.kcp.io/"

	// InternalDownstreamClusterLabel is the label on downstream objects that marks them as
	// owned by the syncer of the SyncTarget whose key is the value.
	InternalDownstreamClusterLabel = "internal.workload.kcp.io/cluster"

	// InternalSyncTargetKeyLabel is the label on a SyncTarget carrying its key, for reverse
	// lookups.
	InternalSyncTargetKeyLabel = "internal.workload.kcp.io/key"

	// NamespaceLocatorAnnotation is the annotation on downstream namespaces (and
	// cluster-scoped objects) recording where they come from.
	NamespaceLocatorAnnotation = "kcp.io/namespace-locator"

	// UpsyncResourceVersionAnnotation is on an upsynced upstream object: the
	// resourceVersion of the downstream object it was last written from (kcp's key), so that
	// an unchanged downstream object causes no upstream write.
	UpsyncResourceVersionAnnotation = "workload.kcp.io/rv"

	// UpsyncDerivedResourcesAnnotation on a Service asks for the objects derived from it
	// downstream to be upsynced: a comma-separated list of "endpoints" and "endpointslices".
	UpsyncDerivedResourcesAnnotation = "experimental.workload.kcp.io/upsync-derived-resources"

	// ResourceStateSync marks an object to be synced down.
	ResourceStateSync = "Sync"
	// ResourceStateUpsync marks an object to be synced up.
	ResourceStateUpsync = "Upsync"
	// ResourceStatePendingValue marks an object whose placement is pending.
	ResourceStatePendingValue = ""
)

// ToSyncTargetKey returns the key of the SyncTarget named name in the location workspace
// cluster: base62(sha224("<cluster>:<name>")), as kcp computes it. The key is what every
// per-target label, annotation and finalizer is suffixed with; it fits in a label name.
func ToSyncTargetKey(cluster, name string) string {
	hash := sha256.Sum224([]byte(cluster + ":" + name))
	return new(big.Int).SetBytes(hash[:]).Text(62)
}

// SyncTargetKeyOf returns the key of st, a SyncTarget read from the location workspace
// locationWorkspace: computed from the logical-cluster name in its kcp.io/cluster
// annotation, as kcp does, or from locationWorkspace when it carries none (a plain hub,
// whose only workspace TMC calls "hub").
func SyncTargetKeyOf(st *SyncTarget, locationWorkspace string) string {
	return ToSyncTargetKey(SyncTargetCluster(st, locationWorkspace), st.Name)
}

// SyncTargetCluster returns the logical-cluster name of st's location workspace: its
// kcp.io/cluster annotation, or locationWorkspace when it carries none.
func SyncTargetCluster(st *SyncTarget, locationWorkspace string) string {
	return logicalcluster.NameOr(st.Annotations, locationWorkspace)
}

// ClusterResourceStateLabel returns the state label key for the target with key stKey.
func ClusterResourceStateLabel(stKey string) string {
	return ClusterResourceStateLabelPrefix + stKey
}

// SyncerFinalizerName returns the syncer's finalizer for the target with key stKey.
func SyncerFinalizerName(stKey string) string { return SyncerFinalizerNamePrefix + stKey }

// DeletionAnnotation returns the per-target deletion annotation key.
func DeletionAnnotation(stKey string) string {
	return InternalClusterDeletionTimestampAnnotationPrefix + stKey
}

// SoftFinalizersAnnotation returns the per-target soft-finalizer annotation key.
func SoftFinalizersAnnotation(stKey string) string {
	return ClusterFinalizerAnnotationPrefix + stKey
}

// SpecDiffAnnotation returns the per-target spec-diff annotation key.
func SpecDiffAnnotation(stKey string) string { return ClusterSpecDiffAnnotationPrefix + stKey }

// StatusAnnotation returns the per-target status annotation key.
func StatusAnnotation(stKey string) string { return InternalClusterStatusAnnotationPrefix + stKey }

// SyncTargetKeyFromLabel returns the target key of a per-target key such as
// "state.workload.kcp.io/<stKey>", or false if key does not have the given prefix.
func SyncTargetKeyFromLabel(prefix, key string) (string, bool) {
	if !strings.HasPrefix(key, prefix) || len(key) == len(prefix) {
		return "", false
	}
	return key[len(prefix):], true
}

// SoftFinalizers parses the value of the soft-finalizer annotation: a comma list, blanks
// and duplicates dropped, order kept.
func SoftFinalizers(value string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		out = append(out, f)
	}
	return out
}

// ParseDeletionTimestamp parses the value of the per-target deletion annotation.
func ParseDeletionTimestamp(value string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid deletion timestamp %q (want RFC3339): %w", value, err)
	}
	return t, nil
}

// DefaultResources is the set of resource types a SyncTarget accepts when spec.resources is
// empty.
func DefaultResources() []ResourceToSync {
	return []ResourceToSync{
		{Group: "", Resource: "configmaps"},
		{Group: "", Resource: "secrets"},
		{Group: "", Resource: "serviceaccounts"},
		{Group: "", Resource: "services"},
		{Group: "", Resource: "persistentvolumeclaims"},
		{Group: "apps", Resource: "deployments"},
		{Group: "apps", Resource: "statefulsets"},
		{Group: "batch", Resource: "jobs"},
		{Group: "batch", Resource: "cronjobs"},
		{Group: "networking.k8s.io", Resource: "ingresses"},
	}
}

// String returns "resource.group", or "resource" for the core group.
func (r ResourceToSync) String() string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

// ParseResourceToSync parses "resource" or "resource.group" (as kubectl spells them).
func ParseResourceToSync(s string) (ResourceToSync, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ResourceToSync{}, fmt.Errorf("empty resource name")
	}
	if s != strings.ToLower(s) {
		return ResourceToSync{}, fmt.Errorf("resource %q must be lowercase (plural resource name, e.g. deployments.apps)", s)
	}
	resource, group, _ := strings.Cut(s, ".")
	if resource == "" {
		return ResourceToSync{}, fmt.Errorf("resource %q has an empty resource name", s)
	}
	return ResourceToSync{Group: group, Resource: resource}, nil
}
