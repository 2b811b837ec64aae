package workspaces

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/wildcard"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
)

// placementsGVR is what makes a workspace a workload workspace: it has a Placement.
var placementsGVR = schedulingv1alpha1.SchemeGroupVersion.WithResource("placements")

// Binder is a controller that takes workload workspaces at runtime.
type Binder interface {
	// AddWorkloadWorkspace registers the controller's informers, indexes and handlers on
	// ws's factories; the caller starts the factories afterwards. It may be called while
	// the controller runs, and again for a workspace it already has (a no-op). The
	// controller processes the workspace only once its own informers of it have synced.
	AddWorkloadWorkspace(ws *Workspace) error
}

// Bind makes ws a workload workspace of set: every binder registers on it, then its
// informers start. It reports false for a path set already has as a workload workspace. A
// binder that fails leaves ws out of set, so that a retry binds it again; binders already
// registered ignore the repeated call.
func Bind(ctx context.Context, set *Set, ws *Workspace, binders ...Binder) (bool, error) {
	if set.WorkloadWorkspace(ws.Path) != nil {
		return false, nil
	}
	if loc, ok := set.Location[ws.Path]; ok {
		ws = loc
	}
	for _, b := range binders {
		if err := b.AddWorkloadWorkspace(ws); err != nil {
			return false, fmt.Errorf("failed to bind workload workspace %s: %w", ws.Path, err)
		}
	}
	ws, added := set.AddWorkload(ws)
	if !added {
		return false, nil
	}
	ws.Start(ctx)
	return true, nil
}

// Discovery binds every workspace with at least one Placement as a workload workspace, found
// through the upstream's wildcard endpoint (/clusters/*): a workspace is named by its
// logical-cluster name (the kcp.io/cluster annotation of its Placements), which is its
// path in the Set. A workspace stays bound while the process runs, even when its last
// Placement goes: its placed namespaces must keep being reconciled and released.
type Discovery struct {
	set          *Set
	binders      []Binder
	newWorkspace func(cluster string) (*Workspace, error)
	placements   *wildcard.Informer
	// queue binds workspaces by logical-cluster name, with the TMC retry rule.
	queue *queue.Queue[string]
}

// NewDiscovery returns the Discovery of the upstream root config base (a kcp front proxy or
// shard): it watches placements at <base>/clusters/* and builds the clients of a new
// workspace at <base>/clusters/<logical-cluster name>.
func NewDiscovery(base *rest.Config, set *Set, resync time.Duration, binders ...Binder) (*Discovery, error) {
	wildcardDynamic, err := dynamic.NewForConfig(wildcard.Config(base))
	if err != nil {
		return nil, fmt.Errorf("failed to create the wildcard client: %w", err)
	}
	placements := wildcard.NewDynamicInformer(wildcardDynamic, placementsGVR, "", "", 0)
	return newDiscovery(placements, set, func(cluster string) (*Workspace, error) {
		return New(base, cluster, resync)
	}, binders)
}

func newDiscovery(placements *wildcard.Informer, set *Set, newWorkspace func(string) (*Workspace, error), binders []Binder) (*Discovery, error) {
	if set == nil {
		return nil, errors.New("workspace discovery needs a workspace set")
	}
	d := &Discovery{
		set:          set,
		binders:      binders,
		newWorkspace: newWorkspace,
		placements:   placements,
	}
	d.queue = queue.New(func(ctx context.Context, cluster string) (time.Duration, error) {
		return 0, d.bind(ctx, cluster)
	}, queue.Options[string]{Name: "workspace-discovery", Component: "tmc-controller",
		LogValues: func(cluster string) []any { return []any{"workspace", cluster} }})
	enqueue := func(obj any) {
		if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tombstone.Obj
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return
		}
		if cluster := wildcard.ClusterOf(m); cluster != "" && set.WorkloadWorkspace(cluster) == nil {
			d.queue.Add(cluster)
		}
	}
	// A deleted Placement unbinds nothing.
	if err := placements.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return nil, fmt.Errorf("failed to watch placements: %w", err)
	}
	return d, nil
}

// Start runs the Placement informer, waits for its first list and binds every workspace it
// shows; it returns once they are bound (informers started, maybe not synced yet), then
// keeps binding the workspaces whose first Placement appears until ctx ends. A workspace
// that fails to bind later is retried with backoff.
func (d *Discovery) Start(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("component", "workspace-discovery")
	ctx = klog.NewContext(ctx, logger)
	go d.placements.Run(ctx)
	if !cache.WaitForNamedCacheSyncWithContext(ctx, d.placements.HasSynced) {
		d.queue.ShutDown()
		return fmt.Errorf("failed to list placements across workspaces: %w", ctx.Err())
	}
	var errs []error
	for _, cluster := range d.placements.Clusters() {
		if err := d.bind(ctx, cluster); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		d.queue.ShutDown()
		return err
	}
	go d.queue.Run(ctx, 1)
	return nil
}

// bind binds the workspace of logical cluster cluster unless it is bound already.
func (d *Discovery) bind(ctx context.Context, cluster string) error {
	if d.set.WorkloadWorkspace(cluster) != nil {
		return nil
	}
	ws, err := d.newWorkspace(cluster)
	if err != nil {
		return fmt.Errorf("failed to build the clients of workspace %s: %w", cluster, err)
	}
	added, err := Bind(ctx, d.set, ws, d.binders...)
	if err != nil {
		return err
	}
	if added {
		klog.FromContext(ctx).Info("Bound workload workspace", "workspace", cluster)
	}
	return nil
}
