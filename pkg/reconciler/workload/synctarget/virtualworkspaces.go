package synctarget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// VirtualWorkspacesControllerName names the controller in logs, the workqueue and TMC
	// errors.
	VirtualWorkspacesControllerName = "synctarget-virtualworkspaces"

	// VirtualWorkspacesFieldManager is the field manager of status.virtualWorkspaces.
	VirtualWorkspacesFieldManager = "tmc-controller-virtualworkspaces"

	// VirtualWorkspacesWritesMetric counts the writes of status.virtualWorkspaces.
	VirtualWorkspacesWritesMetric = "tmc_synctarget_virtualworkspaces_writes_total"
)

// VirtualWorkspacesController keeps SyncTarget.status.virtualWorkspaces of every SyncTarget
// of the location workspaces equal to one entry per virtual-workspace server URL, in the
// order given; see the package documentation.
type VirtualWorkspacesController struct {
	queue      *queue.Queue[syncTargetKey]
	serverURLs []string
	locations  map[string]*locationState
	writes     *prometheus.CounterVec
	synced     []cache.InformerSynced
}

// NewVirtualWorkspacesController registers the SyncTarget informers of the location
// workspaces of set. serverURLs are the virtual-workspace servers' base URLs, one per
// shard; none removes the field. metrics may be nil. It must not be used on a plain hub,
// which has no virtual-workspace server.
func NewVirtualWorkspacesController(set *workspaces.Set, serverURLs []string, metrics *tmc.TMCMetrics) (*VirtualWorkspacesController, error) {
	if set == nil {
		return nil, errors.New("a workspace set is required")
	}
	c := &VirtualWorkspacesController{
		serverURLs: slices.Clone(serverURLs),
		locations:  map[string]*locationState{},
	}
	queueOptions := queue.Options[syncTargetKey]{
		Name: VirtualWorkspacesControllerName,
		LogValues: func(key syncTargetKey) []any {
			return []any{"workspace", key.workspace, "syncTarget", klog.KRef("", key.name)}
		},
	}
	if metrics != nil {
		writes, err := metrics.RegisterCounterVec(VirtualWorkspacesWritesMetric,
			"Number of writes of SyncTarget status.virtualWorkspaces by the tmc-controller.", []string{"workspace"})
		if err != nil {
			return nil, fmt.Errorf("failed to register metrics: %w", err)
		}
		c.writes = writes
		queueOptions.MetricsProvider = metrics.WorkqueueMetricsProvider()
		queueOptions.Recovery.Registerer = metrics.Registerer()
	}
	c.queue = queue.New(func(ctx context.Context, key syncTargetKey) (time.Duration, error) {
		return 0, c.reconcile(ctx, key)
	}, queueOptions)
	if err := watchLocations(set, c.syncTargetHandler, c.locations, &c.synced); err != nil {
		return nil, err
	}
	return c, nil
}

// Run processes SyncTargets with the given number of workers (at least one) until ctx
// ends. Failures are retried by the queue's one TMC retry rule (pkg/reconciler/queue); a
// SyncTarget that is gone is dropped.
func (c *VirtualWorkspacesController) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx).WithValues("controller", VirtualWorkspacesControllerName)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Starting controller", "virtualWorkspaceURLs", c.serverURLs)
	defer logger.Info("Shutting down controller")

	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced...) {
		return
	}
	c.queue.Run(ctx, workers)
}

// syncTargetHandler queues a SyncTarget when it appears, on resync, and when its
// virtualWorkspaces changed; heartbeats alone do not queue it.
func (c *VirtualWorkspacesController) syncTargetHandler(workspace string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if st, ok := obj.(*workloadv1alpha1.SyncTarget); ok {
				c.queue.Add(syncTargetKey{workspace: workspace, name: st.Name})
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			oldST, ok := oldObj.(*workloadv1alpha1.SyncTarget)
			if !ok {
				return
			}
			newST, ok := newObj.(*workloadv1alpha1.SyncTarget)
			if !ok {
				return
			}
			if oldST.ResourceVersion == newST.ResourceVersion ||
				!slices.Equal(oldST.Status.VirtualWorkspaces, newST.Status.VirtualWorkspaces) {
				c.queue.Add(syncTargetKey{workspace: workspace, name: newST.Name})
			}
		},
	}
}

// reconcile brings status.virtualWorkspaces of one SyncTarget up to date.
func (c *VirtualWorkspacesController) reconcile(ctx context.Context, key syncTargetKey) error {
	logger := klog.FromContext(ctx)
	loc, st, err := cachedSyncTarget(ctx, c.locations, key)
	if st == nil || err != nil {
		return err
	}
	desired := DesiredVirtualWorkspaces(c.serverURLs, st, key.workspace)
	if slices.Equal(st.Status.VirtualWorkspaces, desired) {
		logger.V(4).Info("SyncTarget virtual workspaces are up to date")
		return nil
	}
	patch, err := virtualWorkspacesPatch(st.UID, desired)
	if err != nil {
		return err
	}
	logger.V(3).Info("Patching SyncTarget virtual workspaces", "virtualWorkspaces", desired, "previous", st.Status.VirtualWorkspaces)
	_, err = loc.workspace.Dynamic.Resource(syncTargetsGVR).Patch(ctx, st.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: VirtualWorkspacesFieldManager}, "status")
	if err != nil {
		return fmt.Errorf("failed to patch virtual workspaces of SyncTarget %s: %w", st.Name, err)
	}
	if c.writes != nil {
		c.writes.WithLabelValues(key.workspace).Inc()
	}
	logger.V(2).Info("Updated SyncTarget virtual workspaces", "virtualWorkspaces", desired)
	return nil
}

// DesiredVirtualWorkspaces returns status.virtualWorkspaces of st, read from the location
// workspace locationWorkspace: one entry per server URL, in order (nil for none), with the
// SyncTarget's syncer view and upsyncer view of that server.
func DesiredVirtualWorkspaces(serverURLs []string, st *workloadv1alpha1.SyncTarget, locationWorkspace string) []workloadv1alpha1.VirtualWorkspace {
	var out []workloadv1alpha1.VirtualWorkspace
	cluster := workloadv1alpha1.SyncTargetCluster(st, locationWorkspace)
	for _, serverURL := range serverURLs {
		out = append(out, workloadv1alpha1.VirtualWorkspace{
			SyncerURL:   workloadv1alpha1.SyncerVirtualWorkspaceURL(serverURL, cluster, st.Name, st.UID),
			UpsyncerURL: workloadv1alpha1.UpsyncerVirtualWorkspaceURL(serverURL, cluster, st.Name, st.UID),
		})
	}
	return out
}

// virtualWorkspacesPatch is a JSON merge patch that sets the whole list, so that entries
// nobody should have added go too (the controller owns the field), or removes it (null).
// The uid makes the patch fail instead of writing into a recreated SyncTarget of the same
// name.
func virtualWorkspacesPatch(uid types.UID, desired []workloadv1alpha1.VirtualWorkspace) ([]byte, error) {
	var list any // null removes the field
	if len(desired) > 0 {
		list = desired
	}
	body := map[string]any{"status": map[string]any{"virtualWorkspaces": list}}
	if uid != "" {
		body["metadata"] = map[string]any{"uid": string(uid)}
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the virtual workspaces patch: %w", err)
	}
	return patch, nil
}
