package localenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wildcardCluster is the workspace segment of kcp's cross-workspace endpoint:
// /clusters/*/<collection> lists and watches a resource in every workspace at once.
const wildcardCluster = "*"

// wildcardRequest is a parsed /clusters/*/<collection> path.
type wildcardRequest struct {
	// tail is the collection path on every workspace's apiserver, e.g.
	// "api/v1/namespaces/default/configmaps".
	tail      string
	group     string
	version   string
	namespace string
	resource  string
}

// parseWildcardPath parses the path after /clusters/*/. Only collections are served:
// api/v1/<resource>, apis/<group>/<version>/<resource>, each also under namespaces/<ns>/.
func parseWildcardPath(tail string) (wildcardRequest, bool) {
	parts := strings.Split(strings.Trim(tail, "/"), "/")
	req := wildcardRequest{tail: strings.Trim(tail, "/")}
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		req.version, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		req.group, req.version, parts = parts[1], parts[2], parts[3:]
	default:
		return wildcardRequest{}, false
	}
	switch {
	case len(parts) == 1:
		req.resource = parts[0]
	case len(parts) == 3 && parts[0] == "namespaces":
		req.namespace, req.resource = parts[1], parts[2]
	default:
		return wildcardRequest{}, false
	}
	for _, p := range []string{req.version, req.namespace, req.resource} {
		if strings.ContainsAny(p, "*?") {
			return wildcardRequest{}, false
		}
	}
	return req, req.version != "" && req.resource != ""
}

// wildcardBackend is one workspace as the wildcard endpoint sees it.
type wildcardBackend struct {
	path       string
	name       string
	url        *url.URL
	etcdPrefix string
}

// wildcardBackends returns the routed workspaces, ordered by path.
func (fp *FrontProxy) wildcardBackends() []wildcardBackend {
	fp.mu.RLock()
	defer fp.mu.RUnlock()
	out := make([]wildcardBackend, 0, len(fp.names))
	for path, name := range fp.names {
		out = append(out, wildcardBackend{path: path, name: name, url: fp.backends[path], etcdPrefix: fp.etcdPrefixes[path]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// serveWildcard serves GET /clusters/*/<collection>: a list (wildcardList) or, with
// watch=true, a watch (wildcardWatch) across every workspace.
func (fp *FrontProxy) serveWildcard(w http.ResponseWriter, r *http.Request, tail string) {
	req, ok := parseWildcardPath(tail)
	if !ok {
		writeStatusReason(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("/clusters/%s/ only serves lists and watches of collections, not %q", wildcardCluster, tail))
		return
	}
	if r.Method != http.MethodGet {
		writeStatusReason(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			fmt.Sprintf("/clusters/%s/ only serves GET, not %s", wildcardCluster, r.Method))
		return
	}
	backends := fp.wildcardBackends()
	if len(backends) == 0 {
		writeStatusReason(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "no workspace is served")
		return
	}
	q := r.URL.Query()
	if watch, _ := strconv.ParseBool(q.Get("watch")); watch {
		fp.wildcardWatch(w, r, req, backends)
		return
	}
	fp.wildcardList(w, r, req, backends)
}

// wildcardList answers a list across every workspace: one snapshot at one etcd revision R
// (the current one for resourceVersion "" or "0", else the one asked for), each workspace
// listed at exactly R, so the answer is the union of the workspaces' objects at R, with
// resourceVersion R. limit and continue are ignored: the whole list comes in one page
// without a continue token, which a client must accept (the watch cache does the same).
func (fp *FrontProxy) wildcardList(w http.ResponseWriter, r *http.Request, req wildcardRequest, backends []wildcardBackend) {
	ctx := r.Context()
	q := r.URL.Query()
	resourceVersion := q.Get("resourceVersion")
	if q.Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchExact) {
		// As the apiserver's watch cache: a list from a resourceVersion without
		// resourceVersionMatch=Exact is served at least that fresh, at the current
		// revision, so that a client relisting from an old resourceVersion then watches
		// from a revision every workspace (also one created since) can serve.
		resourceVersion = ""
	}
	rev, err := fp.wildcardRevision(ctx, resourceVersion)
	if err != nil {
		writeStatusReason(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	lists, failure := fp.listAt(ctx, r, req, backends, rev, r.URL.Query())
	if failure != nil {
		failure.write(w)
		return
	}
	_, lists = serving(backends, lists)
	merged := map[string]any{
		"kind":       lists[0].Kind,
		"apiVersion": lists[0].APIVersion,
		"metadata":   map[string]any{"resourceVersion": strconv.FormatInt(rev, 10)},
	}
	items := []json.RawMessage{}
	for _, l := range lists {
		items = append(items, l.Items...)
	}
	merged["items"] = items
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(merged)
}

// servingCount counts the lists of backends that serve the resource.
func servingCount(lists []backendList) int {
	n := 0
	for _, l := range lists {
		if !l.absent {
			n++
		}
	}
	return n
}

// serving returns the backends that serve the resource and their lists.
func serving(backends []wildcardBackend, lists []backendList) ([]wildcardBackend, []backendList) {
	var outBackends []wildcardBackend
	var outLists []backendList
	for i, l := range lists {
		if !l.absent {
			outBackends = append(outBackends, backends[i])
			outLists = append(outLists, l)
		}
	}
	return outBackends, outLists
}

// wildcardRevision returns the etcd revision a list or watch from resourceVersion starts
// at: the current one for "" and "0", else resourceVersion itself.
func (fp *FrontProxy) wildcardRevision(ctx context.Context, resourceVersion string) (int64, error) {
	if resourceVersion == "" || resourceVersion == "0" {
		return fp.etcd.Revision(ctx)
	}
	rev, err := strconv.ParseInt(resourceVersion, 10, 64)
	if err != nil || rev <= 0 {
		return 0, fmt.Errorf("invalid resourceVersion %q", resourceVersion)
	}
	return rev, nil
}

// backendList is one workspace's answer to a list.
type backendList struct {
	Kind       string            `json:"kind"`
	APIVersion string            `json:"apiVersion"`
	Items      []json.RawMessage `json:"items"`
	// absent is set when the workspace does not serve the resource (404): a CRD defined in
	// some workspaces only. Like kcp's wildcard, the others are served without it.
	absent bool
}

// backendFailure is a backend's non-200 answer, passed on to the caller as it came.
type backendFailure struct {
	code int
	body []byte
}

func (f *backendFailure) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.code)
	_, _ = w.Write(f.body)
}

// listAt lists req in every backend at exactly revision rev, with the label and field
// selectors of query. A backend that does not serve the resource (404) is absent; a failure
// of any other backend fails the whole list (a 403 wins over other failures, so that a
// caller without rights somewhere is told so), as does a resource no backend serves.
func (fp *FrontProxy) listAt(ctx context.Context, r *http.Request, req wildcardRequest, backends []wildcardBackend, rev int64, query url.Values) ([]backendList, *backendFailure) {
	backendQuery := url.Values{}
	for _, k := range []string{"labelSelector", "fieldSelector"} {
		if v := query.Get(k); v != "" {
			backendQuery.Set(k, v)
		}
	}
	backendQuery.Set("resourceVersion", strconv.FormatInt(rev, 10))
	backendQuery.Set("resourceVersionMatch", string(metav1.ResourceVersionMatchExact))
	lists := make([]backendList, len(backends))
	failures := make([]*backendFailure, len(backends))
	done := make(chan struct{}, len(backends))
	for i, b := range backends {
		go func() {
			defer func() { done <- struct{}{} }()
			lists[i], failures[i] = fp.backendListOne(ctx, r, b, req, backendQuery)
		}()
	}
	for range backends {
		<-done
	}
	var first, notFound *backendFailure
	for i, f := range failures {
		switch {
		case f == nil:
		case f.code == http.StatusNotFound:
			lists[i].absent = true
			notFound = f
		case first == nil || f.code == http.StatusForbidden:
			first = f
		}
	}
	if first != nil {
		return lists, first
	}
	if servingCount(lists) == 0 {
		return lists, notFound
	}
	return lists, nil
}

func (fp *FrontProxy) backendListOne(ctx context.Context, r *http.Request, b wildcardBackend, req wildcardRequest, query url.Values) (backendList, *backendFailure) {
	resp, err := fp.backendGet(ctx, r, b, req.tail, query)
	if err != nil {
		return backendList{}, unavailable(b, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return backendList{}, unavailable(b, err)
	}
	if resp.StatusCode != http.StatusOK {
		return backendList{}, &backendFailure{code: resp.StatusCode, body: body}
	}
	var l backendList
	if err := json.Unmarshal(body, &l); err != nil {
		return backendList{}, unavailable(b, fmt.Errorf("failed to decode the list: %w", err))
	}
	return l, nil
}

// backendGet sends GET <tail>?<query> to backend b with the caller's credentials.
func (fp *FrontProxy) backendGet(ctx context.Context, r *http.Request, b wildcardBackend, tail string, query url.Values) (*http.Response, error) {
	u := *b.url
	u.Path = "/" + tail
	u.RawQuery = query.Encode()
	out, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to create the request to workspace %s: %w", b.path, err)
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		out.Header.Set("Authorization", auth)
	}
	out.Header.Set("Accept", "application/json")
	resp, err := fp.transport.RoundTrip(out)
	if err != nil {
		return nil, fmt.Errorf("failed to reach workspace %s: %w", b.path, err)
	}
	return resp, nil
}

func unavailable(b wildcardBackend, err error) *backendFailure {
	return &backendFailure{code: http.StatusBadGateway, body: statusJSON(http.StatusBadGateway, metav1.StatusReasonServiceUnavailable,
		fmt.Sprintf("workspace %q is unavailable: %v", b.path, err))}
}

func statusJSON(code int, reason metav1.StatusReason, msg string) []byte {
	b, _ := json.Marshal(statusObject(code, reason, msg))
	return b
}

func statusObject(code int, reason metav1.StatusReason, msg string) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
}

func writeStatusReason(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	(&backendFailure{code: code, body: statusJSON(code, reason, msg)}).write(w)
}
