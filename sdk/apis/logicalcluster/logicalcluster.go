package logicalcluster

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Separator joins the segments of a workspace path.
const Separator = ":"

// ClustersPrefix is the URL path prefix under which kcp serves a workspace.
const ClustersPrefix = "/clusters/"

// AnnotationKey is the annotation kcp sets on every object to name its logical cluster.
const AnnotationKey = "kcp.io/cluster"

// NameFrom returns the logical-cluster name kcp recorded in an object's annotations, or ""
// when there is none (a plain Kubernetes hub sets none). kcp names a logical cluster with an
// opaque name distinct from the workspace's path (only the root's name is "root"); keys and
// namespace locators are computed from names.
func NameFrom(annotations map[string]string) string { return annotations[AnnotationKey] }

// NameOr returns NameFrom(annotations), or fallback when the object carries no name.
func NameOr(annotations map[string]string, fallback string) string {
	if name := NameFrom(annotations); name != "" {
		return name
	}
	return fallback
}

// segmentPattern is what kcp accepts for one path segment: a lowercase DNS-1123 label,
// or a logical cluster name (which may contain only lowercase alphanumerics).
var segmentPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Path is a logical-cluster path, e.g. "root:org:team-a". The zero value is the empty path.
type Path struct {
	value string
}

// NewPath returns the path for s without validating it. Use ParsePath for user input.
func NewPath(s string) Path { return Path{value: s} }

// ParsePath validates s and returns it as a Path.
func ParsePath(s string) (Path, error) {
	p := Path{value: s}
	if err := p.Validate(); err != nil {
		return Path{}, err
	}
	return p, nil
}

// String returns the path in its colon-separated form.
func (p Path) String() string { return p.value }

// Empty reports whether the path is empty.
func (p Path) Empty() bool { return p.value == "" }

// Segments returns the path's segments.
func (p Path) Segments() []string {
	if p.value == "" {
		return nil
	}
	return strings.Split(p.value, Separator)
}

// Base returns the last segment, the workspace's own name.
func (p Path) Base() string {
	s := p.Segments()
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// Parent returns the path without its last segment, and false for a one-segment path.
func (p Path) Parent() (Path, bool) {
	i := strings.LastIndex(p.value, Separator)
	if i < 0 {
		return Path{}, false
	}
	return Path{value: p.value[:i]}, true
}

// Join appends a segment.
func (p Path) Join(segment string) Path {
	if p.value == "" {
		return Path{value: segment}
	}
	return Path{value: p.value + Separator + segment}
}

// Validate reports why the path is not a valid logical-cluster path.
func (p Path) Validate() error {
	if p.value == "" {
		return fmt.Errorf("workspace path is empty")
	}
	for i, seg := range p.Segments() {
		if len(seg) > 63 {
			return fmt.Errorf("workspace path %q: segment %d (%q) is longer than 63 characters", p.value, i+1, seg)
		}
		if !segmentPattern.MatchString(seg) {
			return fmt.Errorf("workspace path %q: segment %d (%q) must consist of lowercase alphanumerics and '-', and start and end with an alphanumeric", p.value, i+1, seg)
		}
	}
	return nil
}

// RequestPath returns the URL path prefix of the workspace, "/clusters/<path>".
func (p Path) RequestPath() string { return ClustersPrefix + p.value }

// WorkspaceURL returns the URL of workspace p below base. base may be the front proxy's root
// ("https://host:6443") or already point at a workspace ("https://host:6443/clusters/root:a");
// in the latter case the workspace part is replaced.
func WorkspaceURL(base string, p Path) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("failed to parse upstream URL %q: %w", base, err)
	}
	root, _ := SplitClusterURL(u.Path)
	u.Path = strings.TrimSuffix(root, "/") + p.RequestPath()
	u.RawPath = ""
	return u.String(), nil
}

// SplitClusterURL splits a URL path of the form "<prefix>/clusters/<path>[/rest]" into the
// prefix and the workspace path. A URL path without "/clusters/" returns (urlPath, empty path),
// which means a plain Kubernetes hub with a single workspace.
func SplitClusterURL(urlPath string) (prefix string, p Path) {
	i := strings.Index(urlPath, ClustersPrefix)
	if i < 0 {
		return urlPath, Path{}
	}
	rest := urlPath[i+len(ClustersPrefix):]
	if j := strings.Index(rest, "/"); j >= 0 {
		rest = rest[:j]
	}
	return urlPath[:i], Path{value: rest}
}
