package syncer

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// syncedObjectCount counts the synced objects in the downstream caches, the base of the
// deletion budget's percentage.
func (e *engine) syncedObjectCount() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for _, h := range e.downstreamInformers {
		objs, _ := h.lister.List(labels.Everything())
		n += len(objs)
	}
	return n
}

// workspaceSyncState is what the engine knows of one watched workload workspace.
type workspaceSyncState struct {
	workspace string
	// informers is the number of upstream informers of the workspace; unsynced those not
	// synced yet, sorted.
	informers int
	unsynced  []schema.GroupVersionResource
	// resources is the number of accepted resource types.
	resources int
	// named says whether the workspace's logical-cluster name is known (nothing is watched
	// there before); nameErr why it is not, if learning it failed.
	named   bool
	nameErr error
	// upstreamDynamic and recorder are the workspace's client and Event recorder.
	upstreamDynamic dynamic.Interface
	recorder        record.EventRecorder
}

// workspaceSyncStates returns the state of every watched workload workspace, sorted.
func (e *engine) workspaceSyncStates() []workspaceSyncState {
	e.mu.RLock()
	defer e.mu.RUnlock()
	byWorkspace := map[string]*workspaceSyncState{}
	for ws, upstream := range e.upstreamWorkspaces {
		_, named := e.clusterNames[ws]
		byWorkspace[ws] = &workspaceSyncState{workspace: ws, resources: len(e.resources), upstreamDynamic: upstream.dynamic, recorder: upstream.recorder,
			named: named, nameErr: e.nameErrors[ws]}
	}
	for k, h := range e.upstreamInformers {
		s, ok := byWorkspace[k.workspace]
		if !ok {
			continue
		}
		s.informers++
		if !h.hasSynced() {
			s.unsynced = append(s.unsynced, k.gvr)
		}
	}
	out := make([]workspaceSyncState, 0, len(byWorkspace))
	for _, s := range byWorkspace {
		sort.Slice(s.unsynced, func(i, j int) bool { return s.unsynced[i].String() < s.unsynced[j].String() })
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].workspace < out[j].workspace })
	return out
}

// workspaceHealthChecker turns the engine's workspace states into
// SyncTarget.status.workspaceHealth. For a workspace whose informers have not synced it
// asks the workspace once per report (a list of one object) to tell why: an informer that
// cannot list only retries, it does not say. It records an Event in a workspace when it
// turns unreadable and when it recovers (best effort: without the right to create Events
// there, only the status tells).
type workspaceHealthChecker struct {
	syncTargetRef *corev1.ObjectReference
	stateSelector string

	// claims tells which namespaces hold PersistentVolumeClaims downstream (nil: not
	// reported); previous returns the workspace health last reported (nil: none), kept
	// while claims are unknown.
	claims   *downstreamClaims
	previous func() []workloadv1alpha1.WorkspaceHealth

	mu sync.Mutex
	// warned holds the reason last announced by a Warning Event, per workspace.
	warned map[string]string
}

func newWorkspaceHealthChecker(target syncTarget) *workspaceHealthChecker {
	return &workspaceHealthChecker{
		syncTargetRef: &corev1.ObjectReference{APIVersion: workloadv1alpha1.SchemeGroupVersion.String(), Kind: "SyncTarget", Name: target.name, UID: target.uid},
		stateSelector: workloadv1alpha1.ClusterResourceStateLabel(target.key) + "=" + workloadv1alpha1.ResourceStateSync,
		warned:        map[string]string{},
	}
}

// maxWorkspaceHealthMessage bounds a message (the CRD allows 1024 bytes).
const maxWorkspaceHealthMessage = 512

// check returns the health of every workspace in states.
func (c *workspaceHealthChecker) check(ctx context.Context, states []workspaceSyncState) []workloadv1alpha1.WorkspaceHealth {
	out := make([]workloadv1alpha1.WorkspaceHealth, 0, len(states))
	seen := map[string]bool{}
	claims, claimsKnown := c.claims.byWorkspace()
	previous := map[string]*workloadv1alpha1.WorkspaceHealth{}
	if c.previous != nil {
		last := c.previous()
		for i := range last {
			previous[last[i].Path] = &last[i]
		}
	}
	for _, s := range states {
		h := c.checkOne(ctx, s)
		persistentNamespaces(&h, claims, claimsKnown, previous[s.workspace])
		if len(h.Message) > maxWorkspaceHealthMessage {
			h.Message = h.Message[:maxWorkspaceHealthMessage] + "..."
		}
		c.announce(ctx, s, h)
		seen[s.workspace] = true
		out = append(out, h)
	}
	c.mu.Lock()
	for ws := range c.warned {
		if !seen[ws] {
			delete(c.warned, ws)
		}
	}
	c.mu.Unlock()
	return out
}

func (c *workspaceHealthChecker) checkOne(ctx context.Context, s workspaceSyncState) workloadv1alpha1.WorkspaceHealth {
	h := workloadv1alpha1.WorkspaceHealth{Path: s.workspace}
	switch {
	case !s.named && s.nameErr != nil:
		h.Reason, h.Message = classifyRead(s.nameErr, "namespaces (to learn the workspace's logical-cluster name)")
	case !s.named:
		h.Reason, h.Message = workloadv1alpha1.WorkspaceSyncing, "Learning the workspace's logical-cluster name"
	case s.informers == 0 && s.resources > 0:
		h.Reason = workloadv1alpha1.WorkspaceUnreachable
		h.Message = "The workspace serves none of the synced resource types, or cannot be discovered"
	case len(s.unsynced) == 0:
		h.Ready = true
	default:
		h.Reason, h.Message = c.probe(ctx, s.upstreamDynamic, s.unsynced[0])
	}
	return h
}

// probe lists one object of gvr to learn why its informer has not synced.
func (c *workspaceHealthChecker) probe(ctx context.Context, upstreamDynamic dynamic.Interface, gvr schema.GroupVersionResource) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := upstreamDynamic.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: c.stateSelector, Limit: 1})
	resource := gvr.GroupResource().String()
	if err == nil {
		return workloadv1alpha1.WorkspaceSyncing, fmt.Sprintf("Waiting for the informer of %s to sync", resource)
	}
	return classifyRead(err, resource)
}

// classifyRead turns the error of a read of resource in a workspace into a health reason
// and message (WorkspaceSyncing for no error).
func classifyRead(err error, resource string) (string, string) {
	switch {
	case err == nil:
		return workloadv1alpha1.WorkspaceSyncing, ""
	case apierrors.IsForbidden(err):
		return workloadv1alpha1.WorkspaceForbidden, fmt.Sprintf("The syncer may not list %s: %v", resource, err)
	case apierrors.IsUnauthorized(err):
		return workloadv1alpha1.WorkspaceUnauthorized, fmt.Sprintf("The workspace does not accept the syncer's credentials: %v", err)
	default:
		return workloadv1alpha1.WorkspaceUnreachable, fmt.Sprintf("Cannot list %s: %v", resource, err)
	}
}

// announce records an Event in the workspace when it turns unreadable (or the reason
// changes) and when it recovers. Syncing is not announced: every workspace passes through
// it at start-up.
func (c *workspaceHealthChecker) announce(ctx context.Context, s workspaceSyncState, h workloadv1alpha1.WorkspaceHealth) {
	c.mu.Lock()
	defer c.mu.Unlock()
	logger := klog.FromContext(ctx).WithValues("workspace", s.workspace)
	prev, warned := c.warned[s.workspace]
	switch {
	case h.Ready && warned:
		delete(c.warned, s.workspace)
		logger.Info("Workspace readable again")
		c.event(s, corev1.EventTypeNormal, "WorkspaceSynced", "The syncer of SyncTarget "+c.syncTargetRef.Name+" can read this workspace again")
	case !h.Ready && h.Reason != workloadv1alpha1.WorkspaceSyncing && prev != h.Reason:
		c.warned[s.workspace] = h.Reason
		logger.Info("Cannot sync from workspace; the other workspaces keep syncing", "reason", h.Reason, "message", h.Message)
		c.event(s, corev1.EventTypeWarning, "WorkspaceNotSynced", "The syncer of SyncTarget "+c.syncTargetRef.Name+" cannot sync from this workspace: "+h.Message)
	}
}

func (c *workspaceHealthChecker) event(s workspaceSyncState, eventType, reason, msg string) {
	if s.recorder != nil {
		// The SyncTarget lives in the location workspace; the Event lands in this
		// workspace's default namespace, where its users look.
		s.recorder.Event(c.syncTargetRef, eventType, reason, msg)
	}
}
