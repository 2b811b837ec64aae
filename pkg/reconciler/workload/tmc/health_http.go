/*
Copyright The TMC Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package tmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/klog/v2"
)

// Handler returns an http.Handler serving /healthz, /livez and /readyz and
// their per-check paths, for binaries that do not share a mux.
func (m *ComponentHealthManager) Handler() http.Handler {
	mux := http.NewServeMux()
	m.InstallHandlers(mux)
	return mux
}

// InstallHandlers mounts /healthz, /livez and /readyz on mux, plus
// /<endpoint>/<component> for every component served on that endpoint.
//
// The endpoints are served by k8s.io/apiserver/pkg/server/healthz, so they
// answer exactly like a Kubernetes apiserver: 200 "ok" when every check
// passes; 500 with one line per check ("[+]name ok", "[-]name failed: reason
// withheld") and a final "<endpoint> check failed" line when one fails;
// ?exclude=name, repeatable, skips a check ("warn:" line for an unknown
// name); ?verbose prints the per-check list on success too. An endpoint
// without checks answers with the library's "ping" check. As in Kubernetes,
// reasons are withheld from the plain aggregate because probes are often
// reachable without authorization; the library logs them at V(2).
//
// Three things are TMC's own, kept from before the library served these
// endpoints: the checks of one request run concurrently, each under its
// timeout (the library runs them one after the other); ?verbose=false (or any
// value that is not a true boolean) is not verbose; and ?verbose on a failure,
// like the per-check paths, includes the reasons ("[-]name failed: reason"),
// so mount the handlers only where that level of detail may be disclosed.
// Per-check paths answer 200 "ok", 500 "[-]name failed: reason", or 404 for a
// component not served on that endpoint.
func (m *ComponentHealthManager) InstallHandlers(mux *http.ServeMux) {
	h := &healthHandler{manager: m}
	for _, ep := range healthEndpoints {
		mux.Handle("/"+ep.String(), h)
		mux.Handle("/"+ep.String()+"/", h)
	}
}

// healthHandler serves every health endpoint of one manager through a
// library mux that it rebuilds whenever the set of components changes: the
// library takes its checks once, at installation.
type healthHandler struct {
	manager *ComponentHealthManager

	mu         sync.Mutex
	generation uint64
	mux        *http.ServeMux
}

// ServeHTTP evaluates the checks the request needs, lets the library write
// the response into a buffer, and adds the failure reasons the library
// withholds or words differently.
func (h *healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep, check, ok := parseHealthPath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	r, verbose := normalizeVerbose(r)
	results := &healthResults{manager: h.manager, byName: map[string]ComponentHealth{}}
	if check == "" {
		results.evaluateAll(r.Context(), h.manager.componentsFor(ep), r.URL.Query()["exclude"])
	}

	buf := &bufferedResponse{header: w.Header()}
	buf.header.Set("Content-Type", "text/plain; charset=utf-8")
	buf.header.Set("X-Content-Type-Options", "nosniff")
	h.libraryMux().ServeHTTP(buf, r.WithContext(context.WithValue(r.Context(), healthResultsKey{}, results)))

	body := buf.body.Bytes()
	if buf.code == http.StatusInternalServerError {
		switch {
		case check != "":
			if status, ok := results.get(check); ok {
				klog.FromContext(r.Context()).V(2).Info("Health check failed",
					"manager", h.manager.name, "endpoint", ep.String(), "check", check, "reason", status.Message)
				body = fmt.Appendf(nil, "[-]%s failed: %s\n", check, status.Message)
			}
		case verbose:
			body = results.withReasons(body)
		}
	}
	// The body changed size; let net/http compute the length again.
	w.Header().Del("Content-Length")
	w.WriteHeader(buf.statusCode())
	_, _ = w.Write(body)
}

// libraryMux returns the mux the healthz library installed the current
// components on, rebuilding it after a component was added or removed.
func (h *healthHandler) libraryMux() *http.ServeMux {
	generation, byEndpoint := h.manager.snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mux != nil && h.generation == generation {
		return h.mux
	}
	mux := http.NewServeMux()
	for _, ep := range healthEndpoints {
		comps := byEndpoint[ep]
		checks := make([]healthz.HealthChecker, 0, len(comps))
		for _, c := range comps {
			checks = append(checks, healthz.NamedCheck(c.name, func(r *http.Request) error {
				return resultsFrom(r, h.manager).check(r.Context(), c)
			}))
		}
		healthz.InstallPathHandler(mux, "/"+ep.String(), checks...)
	}
	h.mux, h.generation = mux, generation
	return mux
}

// parseHealthPath splits "/readyz" or "/readyz/<check>" into the endpoint
// and the check name ("" for the aggregate).
func parseHealthPath(path string) (healthEndpoint, string, bool) {
	first, check, nested := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	for _, ep := range healthEndpoints {
		if ep.String() != first {
			continue
		}
		if nested && (check == "" || strings.Contains(check, "/")) {
			return 0, "", false
		}
		return ep, check, true
	}
	return 0, "", false
}

// normalizeVerbose reports whether the request asks for verbose output and,
// because the library treats any ?verbose as verbose, drops a verbose
// parameter that is not a true boolean ("?verbose" alone is verbose).
func normalizeVerbose(r *http.Request) (*http.Request, bool) {
	query := r.URL.Query()
	values, found := query["verbose"]
	if !found {
		return r, false
	}
	verbose := true
	if values[0] != "" {
		verbose, _ = strconv.ParseBool(values[0])
	}
	if verbose {
		return r, true
	}
	query.Del("verbose")
	r = r.Clone(r.Context())
	r.URL.RawQuery = query.Encode()
	return r, false
}

// healthResultsKey is the request-context key of the *healthResults of a
// request.
type healthResultsKey struct{}

// healthResults holds the outcome of every check evaluated for one request.
type healthResults struct {
	manager *ComponentHealthManager

	mu     sync.Mutex
	byName map[string]ComponentHealth
}

// resultsFrom returns the results of the request, or fresh ones when the
// check is called outside ServeHTTP.
func resultsFrom(r *http.Request, m *ComponentHealthManager) *healthResults {
	if results, ok := r.Context().Value(healthResultsKey{}).(*healthResults); ok {
		return results
	}
	return &healthResults{manager: m, byName: map[string]ComponentHealth{}}
}

// evaluateAll runs the not excluded components concurrently, so a request
// takes as long as its slowest check rather than the sum of all.
func (res *healthResults) evaluateAll(ctx context.Context, comps []*healthComponent, exclude []string) {
	toRun := make([]*healthComponent, 0, len(comps))
	for _, c := range comps {
		if !slices.Contains(exclude, c.name) {
			toRun = append(toRun, c)
		}
	}
	statuses := res.manager.evaluate(ctx, toRun)
	res.mu.Lock()
	defer res.mu.Unlock()
	for _, s := range statuses {
		res.byName[s.Name] = s
	}
}

// check returns the evaluated status of c as the error the library expects,
// evaluating it now if the request did not do so up front (a per-check path,
// or a component registered while the request ran).
func (res *healthResults) check(ctx context.Context, c *healthComponent) error {
	status, ok := res.get(c.name)
	if !ok {
		status = res.manager.evaluateOne(ctx, c)
		res.mu.Lock()
		res.byName[c.name] = status
		res.mu.Unlock()
	}
	if status.Healthy {
		return nil
	}
	return errors.New(status.Message)
}

func (res *healthResults) get(name string) (ComponentHealth, bool) {
	res.mu.Lock()
	defer res.mu.Unlock()
	status, ok := res.byName[name]
	return status, ok
}

// withReasons replaces the library's "[-]name failed: reason withheld" lines
// by the reasons.
func (res *healthResults) withReasons(body []byte) []byte {
	const prefix, withheld = "[-]", " failed: reason withheld"
	lines := bytes.SplitAfter(body, []byte("\n"))
	for i, line := range lines {
		name, found := strings.CutSuffix(strings.TrimSuffix(string(line), "\n"), withheld)
		if !found || !strings.HasPrefix(name, prefix) {
			continue
		}
		name = strings.TrimPrefix(name, prefix)
		if status, ok := res.get(name); ok && !status.Healthy {
			lines[i] = fmt.Appendf(nil, "%s%s failed: %s\n", prefix, name, status.Message)
		}
	}
	return bytes.Join(lines, nil)
}

// bufferedResponse collects what the library writes, sharing the header map
// of the real response.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) statusCode() int {
	if b.code == 0 {
		return http.StatusOK
	}
	return b.code
}
