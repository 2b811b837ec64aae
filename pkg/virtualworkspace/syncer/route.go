package syncer

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// verb is what a request does, in the apiserver's words.
type verb string

const (
	verbList        verb = "list"
	verbWatch       verb = "watch"
	verbGet         verb = "get"
	verbCreate      verb = "create"
	verbUpdate      verb = "update"
	verbPatch       verb = "patch"
	verbDelete      verb = "delete"
	verbDiscovery   verb = "discovery"
	verbUnsupported verb = "unsupported"
	// verbTunnel is a syncer opening its reverse tunnel (TunnelSubpath).
	verbTunnel verb = "tunnel"
)

// wildcardCluster is the cluster segment naming every workspace.
const wildcardCluster = "*"

// request is a syncer-view request below /clusters/, parsed.
type request struct {
	// Cluster is the logical-cluster name, or "*".
	Cluster string
	Verb    verb
	// APIPath is the request path to the upstream below /clusters/<cluster>, e.g.
	// /api/v1/namespaces/ns/configmaps/c.
	APIPath     string
	GR          schema.GroupResource
	Version     string
	Namespace   string
	Name        string
	Subresource string
}

// isCollection reports whether the request addresses a collection (no name).
func (r request) isCollection() bool { return r.Name == "" }

// parseRequest parses rest, the part of the path after the SyncTarget's uid, for method
// and whether the query asks for a watch. ok is false when rest is not below /clusters/.
func parseRequest(method, rest string, watch bool) (request, bool) {
	tail, found := strings.CutPrefix(rest, "/clusters/")
	if !found {
		return request{}, false
	}
	cluster, apiPath, _ := strings.Cut(tail, "/")
	if cluster == "" || hasDotSegment(tail) {
		return request{}, false
	}
	r := request{Cluster: cluster, APIPath: "/" + apiPath, Verb: verbUnsupported}
	parts := splitPath(apiPath)
	var resourceParts []string
	switch {
	case len(parts) >= 1 && parts[0] == "api":
		if len(parts) <= 2 {
			r.Verb = discoveryVerb(method)
			return r, true
		}
		r.Version, resourceParts = parts[1], parts[2:]
	case len(parts) >= 1 && parts[0] == "apis":
		if len(parts) <= 3 {
			r.Verb = discoveryVerb(method)
			return r, true
		}
		r.GR.Group, r.Version, resourceParts = parts[1], parts[2], parts[3:]
	default:
		return r, true
	}
	if !r.parseResource(resourceParts) {
		return r, true
	}
	r.Verb = resourceVerb(method, r.isCollection(), watch)
	return r, true
}

// parseResource fills the resource, namespace, name and subresource from the path segments
// after the version; false when they do not name a resource.
func (r *request) parseResource(parts []string) bool {
	// namespaces/<name>/status and /finalize are subresources of a namespace, as the
	// apiserver reads them; namespaces/<ns>/<resource>... is a namespaced resource.
	if len(parts) >= 3 && parts[0] == "namespaces" && parts[2] != "status" && parts[2] != "finalize" {
		r.Namespace, parts = parts[1], parts[2:]
	}
	switch len(parts) {
	case 1:
		r.GR.Resource = parts[0]
	case 2:
		r.GR.Resource, r.Name = parts[0], parts[1]
	case 3:
		r.GR.Resource, r.Name, r.Subresource = parts[0], parts[1], parts[2]
	default:
		return false
	}
	// The legacy /watch/ prefix is not served: clients use ?watch=true.
	return r.GR.Resource != "watch" && r.GR.Resource != ""
}

// hasDotSegment reports whether p has a "." or ".." segment: the path the server checks must
// be the path the upstream serves, whoever cleans it on the way.
func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func discoveryVerb(method string) verb {
	if method == http.MethodGet {
		return verbDiscovery
	}
	return verbUnsupported
}

func resourceVerb(method string, collection, watch bool) verb {
	switch {
	case method == http.MethodGet && collection && watch:
		return verbWatch
	case method == http.MethodGet && collection:
		return verbList
	case method == http.MethodGet:
		return verbGet
	case method == http.MethodPost && collection:
		return verbCreate
	case method == http.MethodPut && !collection:
		return verbUpdate
	case method == http.MethodPatch && !collection:
		return verbPatch
	case method == http.MethodDelete && !collection:
		return verbDelete
	}
	return verbUnsupported
}
