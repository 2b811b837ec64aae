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
// "kcp-" + the first 12 characters of base36(sha224(locator JSON)), as kcp computes it —
// kcp's base36 writes one "0" per leading zero byte of the hash (about one locator in 256).
func (l NamespaceLocator) DownstreamNamespaceName() (string, error) {
	hash, err := l.hash()
	if err != nil {
		return "", err
	}
	return downstreamNamespaceName(strings.Repeat("0", leadingZeroBytes(hash)) + hashText36(hash)), nil
}

// LegacyDownstreamNamespaceName returns the name TMC gave the locator's namespace before it
// wrote kcp's leading zeros, and whether it differs from DownstreamNamespaceName. A
// downstream namespace created under that name, with this locator, stays in use: renaming it
// would leave its workloads and volumes behind.
func (l NamespaceLocator) LegacyDownstreamNamespaceName() (string, bool, error) {
	hash, err := l.hash()
	if err != nil {
		return "", false, err
	}
	if leadingZeroBytes(hash) == 0 {
		return "", false, nil
	}
	return downstreamNamespaceName(hashText36(hash)), true, nil
}

// IsDownstreamNamespaceName reports whether name is the locator's downstream namespace,
// under kcp's name or the legacy one.
func (l NamespaceLocator) IsDownstreamNamespaceName(name string) bool {
	if want, err := l.DownstreamNamespaceName(); err == nil && want == name {
		return true
	}
	legacy, differs, err := l.LegacyDownstreamNamespaceName()
	return err == nil && differs && legacy == name
}

func (l NamespaceLocator) hash() ([sha256.Size224]byte, error) {
	b, err := json.Marshal(l.normalized())
	if err != nil {
		return [sha256.Size224]byte{}, fmt.Errorf("failed to marshal namespace locator: %w", err)
	}
	return sha256.Sum224(b), nil
}

func hashText36(hash [sha256.Size224]byte) string {
	return strings.ToLower(new(big.Int).SetBytes(hash[:]).Text(36))
}

func leadingZeroBytes(hash [sha256.Size224]byte) int {
	n := 0
	for n < len(hash) && hash[n] == 0 {
		n++
	}
	return n
}

func downstreamNamespaceName(text36 string) string {
	if len(text36) > 12 {
		text36 = text36[:12]
	}
	return "kcp-" + text36
}
