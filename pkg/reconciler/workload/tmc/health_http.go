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
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

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
// The aggregate endpoints answer 200 "ok" when every check passes. When one
// fails they answer 500 with one line per check ("[+]name ok",
// "[-]name failed: reason withheld") and a final "<endpoint> check failed"
// line. As in Kubernetes, reasons are withheld there because probes are
// often reachable without authorization; they are logged at V(2) instead.
// ?verbose (or ?verbose=true) prints the per-check list even on success and
// includes the reasons, as do the per-check paths, so mount the handlers
// only where that level of detail may be disclosed.
// ?exclude=name, repeatable, skips a check; excluding an unknown name adds a
// "warn:" line but does not fail. Per-check paths answer 200 "ok", or 500
// with the reason, or 404 for a component not served on that endpoint.
func (m *ComponentHealthManager) InstallHandlers(mux *http.ServeMux) {
	for _, ep := range healthEndpoints {
		h := m.endpointHandler(ep)
		mux.Handle("/"+ep.String(), h)
		mux.Handle("/"+ep.String()+"/", h)
	}
}

// endpointHandler serves one endpoint and its per-check paths.
func (m *ComponentHealthManager) endpointHandler(ep healthEndpoint) http.Handler {
	prefix := "/" + ep.String()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		switch {
		case rest == "":
			m.serveAggregate(w, r, ep)
		case strings.HasPrefix(rest, "/") && !strings.Contains(rest[1:], "/") && rest != "/":
			m.serveSingle(w, r, ep, rest[1:])
		default:
			http.NotFound(w, r)
		}
	})
}

// serveSingle serves /<endpoint>/<name>.
func (m *ComponentHealthManager) serveSingle(w http.ResponseWriter, r *http.Request, ep healthEndpoint, name string) {
	c := m.component(name, ep)
	if c == nil {
		http.NotFound(w, r)
		return
	}
	status := m.evaluateOne(r.Context(), c)
	if !status.Healthy {
		klog.FromContext(r.Context()).V(2).Info("Health check failed",
			"manager", m.name, "endpoint", ep.String(), "check", name, "reason", status.Message)
		writeHealthResponse(w, http.StatusInternalServerError, fmt.Sprintf("[-]%s failed: %s\n", name, status.Message))
		return
	}
	writeHealthResponse(w, http.StatusOK, "ok")
}

// serveAggregate serves /<endpoint>.
func (m *ComponentHealthManager) serveAggregate(w http.ResponseWriter, r *http.Request, ep healthEndpoint) {
	query := r.URL.Query()
	// "?verbose" and "?verbose=true" enable it; "?verbose=false" does not.
	verboseValue, verbose := query["verbose"]
	if verbose && verboseValue[0] != "" {
		verbose, _ = strconv.ParseBool(verboseValue[0])
	}
	unmatched := map[string]bool{}
	for _, name := range query["exclude"] {
		unmatched[name] = true
	}

	comps := m.componentsFor(ep)
	excluded := make([]bool, len(comps))
	toRun := make([]*healthComponent, 0, len(comps))
	for i, c := range comps {
		if _, ok := unmatched[c.name]; ok {
			excluded[i] = true
			delete(unmatched, c.name)
			continue
		}
		toRun = append(toRun, c)
	}
	results := m.evaluate(r.Context(), toRun)

	var body strings.Builder
	var failures []string
	next := 0
	for i, c := range comps {
		if excluded[i] {
			fmt.Fprintf(&body, "[+]%s excluded: ok\n", c.name)
			continue
		}
		status := results[next]
		next++
		switch {
		case status.Healthy:
			fmt.Fprintf(&body, "[+]%s ok\n", c.name)
		case verbose:
			fmt.Fprintf(&body, "[-]%s failed: %s\n", c.name, status.Message)
			failures = append(failures, c.name+": "+status.Message)
		default:
			fmt.Fprintf(&body, "[-]%s failed: reason withheld\n", c.name)
			failures = append(failures, c.name+": "+status.Message)
		}
	}
	if len(unmatched) > 0 {
		names := make([]string, 0, len(unmatched))
		for name := range unmatched {
			names = append(names, strconv.Quote(name))
		}
		slices.Sort(names)
		fmt.Fprintf(&body, "warn: some health checks cannot be excluded: no matches for %s\n", strings.Join(names, ","))
	}

	if len(failures) > 0 {
		klog.FromContext(r.Context()).V(2).Info("Health endpoint check failed",
			"manager", m.name, "endpoint", ep.String(), "failures", failures)
		fmt.Fprintf(&body, "%s check failed\n", ep)
		writeHealthResponse(w, http.StatusInternalServerError, body.String())
		return
	}
	if !verbose {
		writeHealthResponse(w, http.StatusOK, "ok")
		return
	}
	fmt.Fprintf(&body, "%s check passed\n", ep)
	writeHealthResponse(w, http.StatusOK, body.String())
}

// writeHealthResponse writes a plain-text probe response.
func writeHealthResponse(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, body)
}
