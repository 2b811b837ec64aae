package localenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wildcardBookmarkInterval is how long an idle wildcard watch waits before it sends a
// BOOKMARK (when the client allows them).
const wildcardBookmarkInterval = 2 * time.Second

// backendEvent is one event of a workspace's unfiltered watch.
type backendEvent struct {
	eventType string
	obj       wildcardObject
	status    *metav1.Status // of an ERROR event
}

// wildcardWatch serves a watch across every workspace, its events in global etcd-revision
// order, so that a client resuming from the resourceVersion of the last event it got misses
// none and sees none twice. One keys-only etcd watch gives the order: each change of the
// resource in any workspace, as (revision, workspace). Each workspace's apiserver streams
// the objects on an unfiltered watch of the resource; for each etcd change the merge takes
// that workspace's event of the same revision, then applies the caller's selectors itself
// (watchFilter). A workspace added or removed ends the watch (the client watches again,
// across the new set of workspaces), and so does a replaced one.
func (fp *FrontProxy) wildcardWatch(w http.ResponseWriter, r *http.Request, req wildcardRequest, backends []wildcardBackend) {
	q := r.URL.Query()
	ctx := r.Context()
	// Taken before the backends were (by the caller) would be better; a workspace added in
	// between is seen on the next watch, which the relist after a 404 or 410 starts.
	changed := fp.workspacesChangedCh()
	if s := q.Get("timeoutSeconds"); s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs < 0 {
			writeStatusReason(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("invalid timeoutSeconds %q", s))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-ctx.Done():
		}
	}()
	filter, err := newWatchFilter(q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		writeStatusReason(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	rv := q.Get("resourceVersion")
	// As the apiserver: a watch from "" or "0" starts with the current objects as ADDED.
	initialEvents := rv == "" || rv == "0"
	explicitInitial := false
	if s := q.Get("sendInitialEvents"); s != "" {
		initialEvents, _ = strconv.ParseBool(s)
		explicitInitial = initialEvents
	}
	rev, err := fp.wildcardRevision(ctx, rv)
	if err != nil {
		writeStatusReason(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	// The objects at rev: the initial events, which objects match the selectors when the
	// watch starts, and the kind for bookmarks.
	lists, failure := fp.listAt(ctx, r, req, backends, rev, url.Values{})
	if failure != nil {
		failure.write(w)
		return
	}
	// Only the workspaces serving the resource are watched; the watch ends when one of the
	// others stores its first object of the resource (its CRD arrived), and the client
	// watches again, across it too.
	all := backends
	backends, lists = serving(backends, lists)
	var absent []string
	for _, b := range all {
		if !slices.ContainsFunc(backends, func(s wildcardBackend) bool { return s.path == b.path }) {
			absent = append(absent, resourceKeyPrefix(b.etcdPrefix, req))
		}
	}
	kind, apiVersion := strings.TrimSuffix(lists[0].Kind, "List"), lists[0].APIVersion
	var initial []json.RawMessage
	for i, l := range lists {
		for _, item := range l.Items {
			obj, err := parseWildcardObject(item)
			if err != nil {
				writeStatusReason(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
				return
			}
			filter.seed(backends[i].name, obj)
			if initialEvents && filter.matches(obj) {
				initial = append(initial, item)
			}
		}
	}
	order, streams, failure := fp.startWildcardStreams(ctx, r, req, all, backends, rev)
	if failure != nil {
		failure.write(w)
		return
	}
	out := newWatchWriter(w, kind, apiVersion)
	for _, item := range initial {
		out.event("ADDED", item)
	}
	if explicitInitial {
		out.bookmark(rev, true)
	}
	m := &wildcardMerge{req: req, backends: backends, absent: absent, order: order, streams: streams, filter: filter, out: out,
		bookmarks: q.Get("allowWatchBookmarks") == "true", progress: rev}
	if err := m.run(ctx); err != nil && ctx.Err() == nil {
		fp.server.ErrorLog.Printf("wildcard watch of %s: %v", req.tail, err)
	}
}

// startWildcardStreams starts the etcd watch over every workspace from rev+1 and each
// workspace's unfiltered watch of req from rev.
func (fp *FrontProxy) startWildcardStreams(ctx context.Context, r *http.Request, req wildcardRequest, all, backends []wildcardBackend, rev int64) (*etcdWatchStream, []<-chan backendEvent, *backendFailure) {
	prefixes := make([]string, len(all))
	for i, b := range all {
		prefixes[i] = b.etcdPrefix
	}
	order, err := fp.etcd.watchEtcdPrefix(ctx, commonPrefix(prefixes), rev+1)
	if errors.Is(err, errEtcdCompacted) {
		return nil, nil, goneFailure(rev)
	}
	if err != nil {
		return nil, nil, &backendFailure{code: http.StatusInternalServerError, body: statusJSON(http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())}
	}
	query := url.Values{"watch": {"true"}, "resourceVersion": {strconv.FormatInt(rev, 10)}}
	streams := make([]<-chan backendEvent, len(backends))
	for i, b := range backends {
		resp, err := fp.backendGet(ctx, r, b, req.tail, query)
		if err != nil {
			return nil, nil, unavailable(b, err)
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return nil, nil, &backendFailure{code: resp.StatusCode, body: body}
		}
		streams[i] = readBackendWatch(ctx, resp.Body)
	}
	return order, streams, nil
}

// readBackendWatch decodes a watch stream into a channel, closed when the stream ends.
func readBackendWatch(ctx context.Context, body io.ReadCloser) <-chan backendEvent {
	events := make(chan backendEvent, 256)
	go func() {
		defer close(events)
		defer func() { _ = body.Close() }()
		dec := json.NewDecoder(body)
		for {
			var line struct {
				Type   string          `json:"type"`
				Object json.RawMessage `json:"object"`
			}
			if err := dec.Decode(&line); err != nil {
				return
			}
			ev := backendEvent{eventType: line.Type}
			if line.Type == "ERROR" {
				ev.status = &metav1.Status{}
				_ = json.Unmarshal(line.Object, ev.status)
			} else if obj, err := parseWildcardObject(line.Object); err == nil {
				ev.obj = obj
			} else {
				ev = backendEvent{eventType: "ERROR", status: &metav1.Status{Code: http.StatusInternalServerError, Message: err.Error()}}
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return events
}

// wildcardMerge puts the workspaces' events in etcd's order.
type wildcardMerge struct {
	req      wildcardRequest
	backends []wildcardBackend
	// absent are the resource's key prefixes in the workspaces that do not serve it.
	absent    []string
	order     *etcdWatchStream
	streams   []<-chan backendEvent
	filter    *watchFilter
	out       *watchWriter
	bookmarks bool
	// progress is the etcd revision up to which every change has been delivered.
	progress int64
}

func (m *wildcardMerge) run(ctx context.Context) error {
	keyPrefixes := make([]string, len(m.backends))
	for i, b := range m.backends {
		keyPrefixes[i] = resourceKeyPrefix(b.etcdPrefix, m.req)
	}
	ticker := time.NewTicker(wildcardBookmarkInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if m.bookmarks && time.Since(m.out.lastWrite) >= wildcardBookmarkInterval {
				m.out.bookmark(m.progress, false)
			}
		case change, ok := <-m.order.Events:
			if !ok {
				err := m.order.Err()
				if errors.Is(err, errEtcdCompacted) {
					m.out.status(statusObject(http.StatusGone, metav1.StatusReasonExpired, err.Error()))
				}
				return err
			}
			if matchingPrefix(m.absent, change.Key) >= 0 {
				// A workspace that did not serve the resource has an object of it now.
				return nil
			}
			i := matchingPrefix(keyPrefixes, change.Key)
			if i >= 0 {
				if err := m.deliver(ctx, i, change.Revision); err != nil {
					return err
				}
			}
			m.progress = change.Revision
		}
	}
}

// deliver passes on workspace i's event of revision rev.
func (m *wildcardMerge) deliver(ctx context.Context, i int, rev int64) error {
	var ev backendEvent
	var ok bool
	select {
	case <-ctx.Done():
		return nil
	case ev, ok = <-m.streams[i]:
	}
	if !ok {
		return fmt.Errorf("the watch of workspace %s ended", m.backends[i].path)
	}
	if ev.eventType == "ERROR" {
		m.out.status(*ev.status)
		return fmt.Errorf("workspace %s: %s", m.backends[i].path, ev.status.Message)
	}
	if got := ev.obj.revision(); got != rev {
		msg := fmt.Sprintf("workspace %s sent revision %d where etcd changed at %d", m.backends[i].path, got, rev)
		m.out.status(statusObject(http.StatusInternalServerError, metav1.StatusReasonInternalError, msg))
		return errors.New(msg)
	}
	typ, raw, emit, err := m.filter.apply(m.backends[i].name, ev.eventType, ev.obj)
	if err != nil {
		return err
	}
	if emit {
		m.out.event(typ, raw)
	}
	return nil
}

func matchingPrefix(prefixes []string, key string) int {
	for i, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return i
		}
	}
	return -1
}

// commonPrefix returns the longest common prefix of ss.
func commonPrefix(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(s, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

func goneFailure(rev int64) *backendFailure {
	return &backendFailure{code: http.StatusGone, body: statusJSON(http.StatusGone, metav1.StatusReasonExpired,
		fmt.Sprintf("too old resource version: %d", rev))}
}

// watchWriter writes a watch's JSON event stream.
type watchWriter struct {
	w          http.ResponseWriter
	enc        *json.Encoder
	kind       string
	apiVersion string
	lastWrite  time.Time
}

func newWatchWriter(w http.ResponseWriter, kind, apiVersion string) *watchWriter {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	ww := &watchWriter{w: w, enc: json.NewEncoder(w), kind: kind, apiVersion: apiVersion}
	ww.flush()
	return ww
}

// event sends an event; obj gets the kind and apiVersion of the resource, which a
// workspace's JSON watch events may lack and a client needs to decode them.
func (ww *watchWriter) event(eventType string, obj json.RawMessage) {
	if eventType != "ERROR" {
		if withKind, err := withKind(obj, ww.kind, ww.apiVersion); err == nil {
			obj = withKind
		}
	}
	_ = ww.enc.Encode(map[string]any{"type": eventType, "object": obj})
	ww.flush()
}

// bookmark sends a BOOKMARK at rev; initialEventsEnd marks the end of the initial events.
func (ww *watchWriter) bookmark(rev int64, initialEventsEnd bool) {
	meta := map[string]any{"resourceVersion": strconv.FormatInt(rev, 10)}
	if initialEventsEnd {
		meta["annotations"] = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	}
	obj, _ := json.Marshal(map[string]any{"kind": ww.kind, "apiVersion": ww.apiVersion, "metadata": meta})
	ww.event("BOOKMARK", obj)
}

func (ww *watchWriter) status(st metav1.Status) {
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	st.Status = metav1.StatusFailure
	obj, _ := json.Marshal(st)
	ww.event("ERROR", obj)
}

func (ww *watchWriter) flush() {
	ww.lastWrite = time.Now()
	if f, ok := ww.w.(http.Flusher); ok {
		f.Flush()
	}
}
