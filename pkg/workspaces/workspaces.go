package workspaces

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

// Workspace holds the clients and informer factories of one workspace.
type Workspace struct {
	// Path is the workspace's logical-cluster path.
	Path string

	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	TMC     tmcclient.Interface

	KubeInformers    informers.SharedInformerFactory
	DynamicInformers dynamicinformer.DynamicSharedInformerFactory
	TMCInformers     tmcinformers.SharedInformerFactory
}

// HubWorkspace is the path of the only workspace of a plain Kubernetes hub (an upstream
// without kcp's /clusters/ URLs): the same name the workload-syncer gives it in hub mode, so
// that SyncTarget keys (base62(sha224("hub:<name>"))), namespace locators and
// SyncTarget.status.workspaces agree on both sides.
const HubWorkspace = "hub"

// New builds the clients of workspace path below the upstream root config base (a kcp front
// proxy root): the workspace is served at <base>/clusters/<path>.
func New(base *rest.Config, path string, resync time.Duration) (*Workspace, error) {
	cfg := rest.CopyConfig(base)
	u, err := logicalcluster.WorkspaceURL(cfg.Host, logicalcluster.NewPath(path))
	if err != nil {
		return nil, err
	}
	cfg.Host = u
	return newWorkspace(cfg, path, resync)
}

// NewHub builds the clients of a plain Kubernetes hub, served at base itself, as the
// workspace HubWorkspace.
func NewHub(base *rest.Config, resync time.Duration) (*Workspace, error) {
	return newWorkspace(rest.CopyConfig(base), HubWorkspace, resync)
}

func newWorkspace(cfg *rest.Config, path string, resync time.Duration) (*Workspace, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create client for workspace %s: %w", path, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create client for workspace %s: %w", path, err)
	}
	tmc, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create client for workspace %s: %w", path, err)
	}
	return &Workspace{
		Path:             path,
		Kube:             kube,
		Dynamic:          dyn,
		TMC:              tmc,
		KubeInformers:    informers.NewSharedInformerFactory(kube, resync),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(dyn, resync),
		TMCInformers:     tmcinformers.NewSharedInformerFactory(tmc, resync),
	}, nil
}

// Start starts every informer requested so far from the workspace's factories.
func (w *Workspace) Start(ctx context.Context) {
	w.KubeInformers.Start(ctx.Done())
	w.DynamicInformers.Start(ctx.Done())
	w.TMCInformers.Start(ctx.Done())
}

// WaitForCacheSync waits for every started informer; it reports whether all synced.
func (w *Workspace) WaitForCacheSync(ctx context.Context) bool {
	ok := true
	for _, synced := range w.KubeInformers.WaitForCacheSync(ctx.Done()) {
		ok = ok && synced
	}
	for _, synced := range w.DynamicInformers.WaitForCacheSync(ctx.Done()) {
		ok = ok && synced
	}
	for _, synced := range w.TMCInformers.WaitForCacheSync(ctx.Done()) {
		ok = ok && synced
	}
	return ok
}

// Shutdown stops the informers and waits for them.
func (w *Workspace) Shutdown() {
	w.KubeInformers.Shutdown()
	w.DynamicInformers.Shutdown()
	w.TMCInformers.Shutdown()
}

// Set is the workspaces a tmc-controller works with: location workspaces (SyncTargets,
// Locations) and workload workspaces (namespaces, Placements, workloads). A workspace may be
// both.
//
// Location and Workload are the workspaces known when the Set is built (NewSet, NewHubSet,
// a struct literal); once the Set is shared, read it only through its methods. Location is
// fixed; Workload grows at runtime through AddWorkload (workspace discovery, Discovery) and
// never shrinks while the process runs.
type Set struct {
	Location map[string]*Workspace
	Workload map[string]*Workspace

	mu sync.RWMutex
}

// NewSet builds the clients for the given workspaces; a path listed in both lists shares
// one Workspace.
func NewSet(base *rest.Config, location, workload []string, resync time.Duration) (*Set, error) {
	s := &Set{Location: map[string]*Workspace{}, Workload: map[string]*Workspace{}}
	all := map[string]*Workspace{}
	get := func(p string) (*Workspace, error) {
		if w, ok := all[p]; ok {
			return w, nil
		}
		w, err := New(base, p, resync)
		if err != nil {
			return nil, err
		}
		all[p] = w
		return w, nil
	}
	for _, p := range location {
		w, err := get(p)
		if err != nil {
			return nil, err
		}
		s.Location[p] = w
	}
	for _, p := range workload {
		w, err := get(p)
		if err != nil {
			return nil, err
		}
		s.Workload[p] = w
	}
	return s, nil
}

// NewHubSet is the Set of a plain Kubernetes hub: the one cluster is both the location and
// the workload workspace, under the path HubWorkspace.
func NewHubSet(base *rest.Config, resync time.Duration) (*Set, error) {
	w, err := NewHub(base, resync)
	if err != nil {
		return nil, err
	}
	return &Set{
		Location: map[string]*Workspace{HubWorkspace: w},
		Workload: map[string]*Workspace{HubWorkspace: w},
	}, nil
}

// All returns every distinct workspace, sorted by path.
func (s *Set) All() []*Workspace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]*Workspace{}
	for p, w := range s.Location {
		seen[p] = w
	}
	for p, w := range s.Workload {
		seen[p] = w
	}
	out := make([]*Workspace, 0, len(seen))
	for _, w := range seen {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// WorkloadPaths returns the workload workspace paths, sorted.
func (s *Set) WorkloadPaths() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.Workload))
	for p := range s.Workload {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// WorkloadWorkspace returns the workload workspace path, nil if it is not in the Set.
func (s *Set) WorkloadWorkspace(path string) *Workspace {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.Workload[path]
}

// AddWorkload adds ws as a workload workspace under ws.Path; it reports false (and changes
// nothing) when that path is already one. A location workspace of the same path is shared,
// as in NewSet.
func (s *Set) AddWorkload(ws *Workspace) (*Workspace, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.Workload[ws.Path]; ok {
		return existing, false
	}
	if loc, ok := s.Location[ws.Path]; ok {
		ws = loc
	}
	if s.Workload == nil {
		s.Workload = map[string]*Workspace{}
	}
	s.Workload[ws.Path] = ws
	return ws, true
}
