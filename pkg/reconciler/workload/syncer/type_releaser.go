package syncer

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// typeReleasePageSize bounds one list of a released type's upstream objects.
	typeReleasePageSize = 500
	// eventReasonTypeReleaseFailed is the Warning Event on the SyncTarget when the upstream
	// objects of a type no longer synced cannot be listed or released in a workspace.
	eventReasonTypeReleaseFailed = "TypeReleaseFailed"
	// eventReasonTypeReleased is the Normal Event on the SyncTarget once every workspace
	// is done.
	eventReasonTypeReleased = "TypeReleased"
)

// typeReleaseKey is one (workspace, type) pair whose upstream objects are to be released.
type typeReleaseKey struct {
	workspace string
	resource  workloadv1alpha1.ResourceToSync
	version   string
}

func (k typeReleaseKey) String() string {
	return k.workspace + "|" + k.resource.String() + "/" + k.version
}

func (k typeReleaseKey) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.resource.Group, Version: k.version, Resource: k.resource.Resource}
}

// pendingRelease is a type that was synced and is no longer, until every watched
// workspace is released.
type pendingRelease struct {
	version string
	// why says why the type is no longer synced.
	why string
	// workspaces are the watched workspaces of the type's release.
	workspaces map[string]*workspaceRelease
}

// workspaceRelease is the progress of a pending type in one workspace.
type workspaceRelease struct {
	// queued says whether its key is in the queue, released whether it is done, lastErr
	// is the last failure ("" none).
	queued, released bool
	lastErr          string
}

// finished reports whether every workspace of the type is released.
func (p *pendingRelease) finished() bool {
	for _, w := range p.workspaces {
		if !w.released {
			return false
		}
	}
	return true
}

// typeReleaser releases the upstream objects of types that were synced and are no longer,
// by a live list in every watched workspace: also those removed while the syncer was down,
// which no running cache holds. It remembers such types in SyncTarget.status.syncedResources
// (state Releasing) until every workspace is done, and reads them back from there on start,
// so that a restart in the middle forgets nothing. Downstream copies are never touched.
type typeReleaser struct {
	stKey   string
	metrics *syncerMetrics
	errors  *errorLog
	queue   *queue.Queue[typeReleaseKey]
	// upstreamClient returns the dynamic client of a watched workspace; accepted reports
	// whether a type is synced (again).
	upstreamClient func(workspace string) (dynamic.Interface, bool)
	accepted       func(workloadv1alpha1.ResourceToSync) bool
	// recorder records Events on syncTargetRef; nil: none. Bound by runControllers.
	recorder      record.EventRecorder
	syncTargetRef *corev1.ObjectReference

	mu sync.Mutex
	// resumed are the types the previous run synced or was releasing, read from the
	// SyncTarget at start; the first track decides on them. Until then they are reported
	// as they were.
	resumed []workloadv1alpha1.SyncedResource
	pending map[workloadv1alpha1.ResourceToSync]*pendingRelease
}

func newTypeReleaser(target syncTarget, e *engine, metrics *syncerMetrics, errs *errorLog, recovery tmc.RecoveryOptions) *typeReleaser {
	r := &typeReleaser{
		stKey:          target.key,
		metrics:        metrics,
		errors:         errs,
		upstreamClient: e.upstreamDynamicFor,
		accepted:       e.acceptsResource,
		syncTargetRef:  &corev1.ObjectReference{APIVersion: workloadv1alpha1.SchemeGroupVersion.String(), Kind: "SyncTarget", Name: target.name, UID: target.uid},
		pending:        map[workloadv1alpha1.ResourceToSync]*pendingRelease{},
	}
	r.queue = queue.New(r.reconcile, queue.Options[typeReleaseKey]{
		Name: "type-release", Component: "syncer", MetricsProvider: metrics.tmc.WorkqueueMetricsProvider(), Recovery: recovery,
		LogValues: func(k typeReleaseKey) []any {
			return []any{"workspace", k.workspace, "resource", k.resource.String(), "version", k.version}
		},
		OnError: r.failed,
	})
	return r
}

// resume remembers the types the previous run synced (Accepted) or was still releasing,
// from the SyncTarget's status as the syncer finds it on start.
func (r *typeReleaser) resume(previous []workloadv1alpha1.SyncedResource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range previous {
		if s.State == workloadv1alpha1.ResourceStateAccepted || s.State == workloadv1alpha1.ResourceStateReleasing {
			r.resumed = append(r.resumed, *s.DeepCopy())
		}
	}
}

// track brings the pending releases in line with one engine reconcile: removed are the
// types that just left the accepted set; want the accepted types, states the discovered
// states (they say why a requested type is not accepted); workspaces the watched ones.
// Types synced before and not wanted now become pending, types wanted again stop being
// released (the spec controller re-adopts them), and every (workspace, pending type) pair
// not queued yet is queued.
func (r *typeReleaser) track(ctx context.Context, removed []workloadv1alpha1.SyncedResource, want map[schema.GroupVersionResource]resourceInfo,
	states []workloadv1alpha1.SyncedResource, workspaces []string) {
	wanted := map[workloadv1alpha1.ResourceToSync]bool{}
	for gvr := range want {
		wanted[workloadv1alpha1.ResourceToSync{Group: gvr.Group, Resource: gvr.Resource}] = true
	}
	logger := klog.FromContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	candidates := append(slices.Clone(r.resumed), removed...)
	r.resumed = nil
	for _, c := range candidates {
		if wanted[c.ResourceToSync] || r.pending[c.ResourceToSync] != nil {
			continue
		}
		if len(c.Versions) == 0 {
			logger.Info("Resource type no longer synced, but its version is unknown; not releasing it", "resource", c.String())
			continue
		}
		logger.Info("Resource type no longer synced; releasing its upstream objects (downstream copies are kept)", "resource", c.String())
		r.pending[c.ResourceToSync] = &pendingRelease{version: c.Versions[0], why: whyNotSynced(c.ResourceToSync, states), workspaces: map[string]*workspaceRelease{}}
	}
	for res, p := range r.pending {
		if wanted[res] {
			logger.Info("Resource type synced again; its release stops", "resource", res.String())
			delete(r.pending, res)
			continue
		}
		p.why = whyNotSynced(res, states)
		for ws := range p.workspaces {
			if !slices.Contains(workspaces, ws) {
				delete(p.workspaces, ws)
			}
		}
		for _, ws := range workspaces {
			w := p.workspaces[ws]
			if w == nil {
				w = &workspaceRelease{}
				p.workspaces[ws] = w
			}
			if !w.queued && !w.released {
				w.queued = true
				r.queue.Add(typeReleaseKey{workspace: ws, resource: res, version: p.version})
			}
		}
		if p.finished() {
			delete(r.pending, res)
		}
	}
}

// whyNotSynced says why a type is not synced: its discovered state, or its absence from
// the requested types.
func whyNotSynced(res workloadv1alpha1.ResourceToSync, states []workloadv1alpha1.SyncedResource) string {
	for _, s := range states {
		if s.ResourceToSync == res && s.State != workloadv1alpha1.ResourceStateAccepted {
			if s.Message != "" {
				return string(s.State) + ": " + s.Message
			}
			return string(s.State)
		}
	}
	return "removed from the synced resources"
}

// reconcile releases one (workspace, type) pair: it lists the type's objects that carry
// this target's state label, page by page, and removes the syncer finalizer from each
// that holds it (releaseUpstreamFinalizer). A pair no longer pending, or whose type is
// synced again, needs nothing.
func (r *typeReleaser) reconcile(ctx context.Context, key typeReleaseKey) (requeueAfter time.Duration, err error) {
	if !r.stillPending(key) || r.accepted(key.resource) {
		return 0, nil
	}
	upstreamDynamic, ok := r.upstreamClient(key.workspace)
	if !ok {
		return 0, fmt.Errorf("workspace %s is not watched yet; cannot release %s there", key.workspace, key.resource.String())
	}
	logger := klog.FromContext(ctx)
	client := upstreamDynamic.Resource(key.gvr())
	selector := workloadv1alpha1.ClusterResourceStateLabel(r.stKey)
	finalizer := workloadv1alpha1.SyncerFinalizerName(r.stKey)
	released := 0
	opts := metav1.ListOptions{LabelSelector: selector, Limit: typeReleasePageSize}
	for {
		list, err := client.List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("failed to list the upstream %s of workspace %s to release them: %w", key.resource.String(), key.workspace, err)
		}
		for i := range list.Items {
			upstreamObj := &list.Items[i]
			if !slices.Contains(upstreamObj.GetFinalizers(), finalizer) {
				continue
			}
			// The type may be accepted again meanwhile: its finalizer is then the spec
			// controller's again.
			if r.accepted(key.resource) {
				return 0, nil
			}
			wrote, err := releaseUpstreamFinalizer(ctx, client, r.stKey, upstreamObj)
			if err != nil {
				return 0, fmt.Errorf("failed to release %s %s/%s in workspace %s: %w", key.resource.String(), upstreamObj.GetNamespace(), upstreamObj.GetName(), key.workspace, err)
			}
			if wrote {
				released++
				r.metrics.upstreamWrite(operationPatchFinalizer)
			}
		}
		if list.GetContinue() == "" {
			break
		}
		opts.Continue = list.GetContinue()
	}
	logger.Info("Released the upstream objects of a resource type no longer synced (downstream copies are kept)", "released", released)
	r.done(ctx, key)
	return 0, nil
}

func (r *typeReleaser) stillPending(key typeReleaseKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[key.resource]
	if p == nil || p.version != key.version {
		return false
	}
	w := p.workspaces[key.workspace]
	return w != nil && !w.released
}

// done marks a pair released; the type stops being pending once every workspace is.
func (r *typeReleaser) done(ctx context.Context, key typeReleaseKey) {
	r.mu.Lock()
	p := r.pending[key.resource]
	if p == nil || p.version != key.version {
		r.mu.Unlock()
		return
	}
	if w := p.workspaces[key.workspace]; w != nil {
		w.released, w.queued, w.lastErr = true, false, ""
	}
	finished := p.finished()
	if finished {
		delete(r.pending, key.resource)
	}
	r.mu.Unlock()
	if finished {
		klog.FromContext(ctx).Info("Resource type released in every workspace", "resource", key.resource.String())
		r.event(corev1.EventTypeNormal, eventReasonTypeReleased, fmt.Sprintf(
			"Released the upstream objects of %s from the syncer finalizer in every workspace; their copies stay on the physical cluster", key.resource.String()))
	}
}

// failed records a failure of a pair: in the type's status message, the error summary and
// an Event on the SyncTarget. A pair the queue gives up on is queued again by the next
// track.
func (r *typeReleaser) failed(_ context.Context, key typeReleaseKey, err *tmc.TMCError, decision queue.Decision) {
	err = err.WithOperation("type-release")
	r.metrics.error(err.Type)
	r.errors.record(err)
	r.mu.Lock()
	if p := r.pending[key.resource]; p != nil && p.version == key.version {
		if w := p.workspaces[key.workspace]; w != nil {
			w.lastErr = err.Error()
			w.queued = decision.Retry
		}
	}
	r.mu.Unlock()
	r.event(corev1.EventTypeWarning, eventReasonTypeReleaseFailed, fmt.Sprintf(
		"Cannot release the upstream objects of %s (no longer synced) in workspace %s; retrying: %v", key.resource.String(), key.workspace, err))
}

func (r *typeReleaser) event(eventType, reason, msg string) {
	if r.recorder != nil {
		r.recorder.Event(r.syncTargetRef, eventType, reason, msg)
	}
}

// states returns the discovered states for SyncTarget.status.syncedResources with the
// pending releases as state Releasing (replacing the state of a type still requested),
// and, before the first track, the resumed types as the previous run reported them.
func (r *typeReleaser) states(discovered []workloadv1alpha1.SyncedResource) []workloadv1alpha1.SyncedResource {
	r.mu.Lock()
	defer r.mu.Unlock()
	byType := map[workloadv1alpha1.ResourceToSync]workloadv1alpha1.SyncedResource{}
	for _, s := range discovered {
		byType[s.ResourceToSync] = s
	}
	for _, s := range r.resumed {
		if _, ok := byType[s.ResourceToSync]; !ok {
			byType[s.ResourceToSync] = s
		}
	}
	for res, p := range r.pending {
		byType[res] = workloadv1alpha1.SyncedResource{ResourceToSync: res, Versions: []string{p.version},
			State: workloadv1alpha1.ResourceStateReleasing, Message: p.message()}
	}
	out := make([]workloadv1alpha1.SyncedResource, 0, len(byType))
	for _, s := range byType {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// message says why a type is released, where it is not done yet and why.
func (p *pendingRelease) message() string {
	workspaces := make([]string, 0, len(p.workspaces))
	for ws, w := range p.workspaces {
		if !w.released {
			workspaces = append(workspaces, ws)
		}
	}
	sort.Strings(workspaces)
	msg := fmt.Sprintf("No longer synced (%s): releasing the syncer finalizer from its upstream objects, downstream copies are kept; %d workspace(s) left", p.why, len(workspaces))
	var failures []string
	for _, ws := range workspaces {
		if e := p.workspaces[ws].lastErr; e != "" {
			failures = append(failures, ws+": "+e)
		}
	}
	if len(failures) > 0 {
		msg += "; failing in " + strings.Join(failures, "; ")
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	return msg
}
