package v1alpha1

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// NamespaceLocator records, on a downstream namespace, which upstream namespace of which
// workspace it holds and for which SyncTarget. It is stored as JSON in the
// kcp.io/namespace-locator annotation, and its hash names the downstream namespace.
type NamespaceLocator struct {
	// SyncTarget identifies the target the namespace belongs to.
	SyncTarget SyncTargetLocator `json:"syncTarget"`
	// ClusterName is the upstream workspace (logical cluster).
	ClusterName string `json:"cluster"`
	// Namespace is the upstream namespace.
	Namespace string `json:"namespace"`
}

// SyncTargetLocator identifies a SyncTarget.
type SyncTargetLocator struct {
	// ClusterName is the location workspace of the SyncTarget.
	ClusterName string `json:"cluster,omitempty"`
	// Path is the pre-v0.7 spelling of ClusterName; it is read but never written.
	Path string `json:"path,omitempty"`
	// Name of the SyncTarget.
	Name string `json:"name"`
	// UID of the SyncTarget.
	UID types.UID `json:"uid"`
}

// NewNamespaceLocator returns the locator of upstream namespace ns in workspace cluster for
// the SyncTarget name/uid in location workspace stCluster.
func NewNamespaceLocator(stCluster, stName string, stUID types.UID, cluster, ns string) NamespaceLocator {
	return NamespaceLocator{
		SyncTarget:  SyncTargetLocator{ClusterName: stCluster, Name: stName, UID: stUID},
		ClusterName: cluster,
		Namespace:   ns,
	}
}

// MarshalAnnotation returns the locator's annotation value.
func (l NamespaceLocator) MarshalAnnotation() (string, error) {
	b, err := json.Marshal(l.normalized())
	if err != nil {
		return "", fmt.Errorf("failed to marshal namespace locator: %w", err)
	}
	return string(b), nil
}

// normalized moves the legacy path into ClusterName so that old and new spellings of the
// same locator compare and hash alike.
func (l NamespaceLocator) normalized() NamespaceLocator {
	if l.SyncTarget.ClusterName == "" && l.SyncTarget.Path != "" {
		l.SyncTarget.ClusterName = l.SyncTarget.Path
	}
	l.SyncTarget.Path = ""
	return l
}

// ParseNamespaceLocator parses an annotation value. Unknown fields are ignored so that a
// newer writer does not break an older reader; a value that is not a JSON object, or that
// lacks the SyncTarget name or the upstream cluster, is an error.
func ParseNamespaceLocator(value string) (NamespaceLocator, error) {
	var l NamespaceLocator
	if err := json.Unmarshal([]byte(value), &l); err != nil {
		return NamespaceLocator{}, fmt.Errorf("invalid namespace locator %q: %w", value, err)
	}
	l = l.normalized()
	if l.SyncTarget.Name == "" || l.ClusterName == "" {
		return NamespaceLocator{}, fmt.Errorf("invalid namespace locator %q: syncTarget.name and cluster are required", value)
	}
	return l, nil
}

// SameSyncTarget reports whether l is for the same SyncTarget (cluster, name and UID) as other.
func (l NamespaceLocator) SameSyncTarget(other NamespaceLocator) bool {
	a, b := l.normalized().SyncTarget, other.normalized().SyncTarget
	return a.ClusterName == b.ClusterName && a.Name == b.Name && a.UID == b.UID
}

// DownstreamNamespaceName returns the physical-cluster namespace for the locator:
// "kcp-" + the first 12 characters of base36(sha224(locator JSON)), as kcp computes it.
func (l NamespaceLocator) DownstreamNamespaceName() (string, error) {
	b, err := json.Marshal(l.normalized())
	if err != nil {
		return "", fmt.Errorf("failed to marshal namespace locator: %w", err)
	}
	hash := sha256.Sum224(b)
	s := strings.ToLower(new(big.Int).SetBytes(hash[:]).Text(36))
	if len(s) > 12 {
		s = s[:12]
	}
	return "kcp-" + s, nil
}
