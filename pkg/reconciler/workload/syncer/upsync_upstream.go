package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/wildcard"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// upsyncUpstream holds the caches and clients of the upsynced copies upstream (objects
// labelled state.workload.kcp.io/<key>=Upsync): in direct mode one informer per
// (workspace, type) at the workspace's URL; with syncer views one wildcard informer per
// (upsyncer view, type) — status.virtualWorkspaces[].upsyncerURL beside the syncer view
// of the workspace's shard — each workspace's copies a view of it. No copy is ever read
// with a GET.
type upsyncUpstream struct {
	stKey  string
	resync time.Duration
	base   *rest.Config
	// shardOf returns the syncer view URL of workspace ws (view mode); nil: direct mode.
	shardOf func(ws string) (string, bool)
	// changed receives every event of a copy, with its workspace.
	changed func(ws string, gvr schema.GroupVersionResource, upstreamObj *unstructured.Unstructured, deleted bool)
	// newDynamic builds a client (tests replace it).
	newDynamic func(*rest.Config) (dynamic.Interface, error)

	mu sync.Mutex
	// upsyncerURLs maps each syncer view URL to the upsyncer view URL of its shard.
	upsyncerURLs map[string]string
	// direct holds the informers of direct mode, keyed by workspace.
	direct map[upstreamInformerKey]*informerHandle
	// shared holds the wildcard informers of view mode, keyed by upsyncer view URL.
	shared  map[upstreamInformerKey]*sharedCopies
	clients map[string]dynamic.Interface
}

// sharedCopies is one wildcard informer of copies.
type sharedCopies struct {
	informer *wildcard.Informer
	cancel   context.CancelFunc
}

func newUpsyncUpstream(stKey string, base *rest.Config, resync time.Duration) *upsyncUpstream {
	return &upsyncUpstream{stKey: stKey, base: base, resync: resync,
		newDynamic:   func(cfg *rest.Config) (dynamic.Interface, error) { return dynamic.NewForConfig(cfg) },
		upsyncerURLs: map[string]string{}, direct: map[upstreamInformerKey]*informerHandle{},
		shared: map[upstreamInformerKey]*sharedCopies{}, clients: map[string]dynamic.Interface{}}
}

// upsyncerViewURLs maps the syncer view URLs of st to the upsyncer view URLs beside them.
func upsyncerViewURLs(st *workloadv1alpha1.SyncTarget) map[string]string {
	out := map[string]string{}
	for _, vw := range st.Status.VirtualWorkspaces {
		if vw.SyncerURL != "" && vw.UpsyncerURL != "" {
			out[vw.SyncerURL] = vw.UpsyncerURL
		}
	}
	return out
}

// selector selects the upsynced copies of this target.
func (u *upsyncUpstream) selector() string {
	return workloadv1alpha1.ClusterResourceStateLabel(u.stKey) + "=" + workloadv1alpha1.ResourceStateUpsync
}

// reconcile runs the caches of the given types: per workspace in direct mode, per
// upsyncer view (upsyncerURLs, from the SyncTarget) with views.
func (u *upsyncUpstream) reconcile(ctx context.Context, workspaces []string, gvrs []schema.GroupVersionResource, upsyncerURLs map[string]string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.shardOf == nil {
		return u.reconcileDirectLocked(ctx, workspaces, gvrs)
	}
	u.upsyncerURLs = upsyncerURLs
	want := map[upstreamInformerKey]bool{}
	for _, url := range upsyncerURLs {
		for _, gvr := range gvrs {
			key := upstreamInformerKey{workspace: url, gvr: gvr}
			want[key] = true
			if _, ok := u.shared[key]; ok {
				continue
			}
			cfg := rest.CopyConfig(u.base)
			cfg.Host = url
			wildcardDynamic, err := u.newDynamic(wildcard.Config(cfg))
			if err != nil {
				return fmt.Errorf("failed to create the client of upsyncer view %s: %w", url, err)
			}
			inf := wildcard.NewDynamicInformer(wildcardDynamic, gvr, u.selector(), "", u.resync)
			if err := inf.AddEventHandler(objectHandler(func(upstreamObj *unstructured.Unstructured, deleted bool) {
				u.changed(wildcard.ClusterOf(upstreamObj), gvr, upstreamObj, deleted)
			})); err != nil {
				return err
			}
			informerCtx, cancel := context.WithCancel(ctx)
			u.shared[key] = &sharedCopies{informer: inf, cancel: cancel}
			go inf.Run(informerCtx)
			klog.FromContext(ctx).Info("Started the wildcard informer of an upsyncer view", "url", url, "resource", gvr.String())
		}
	}
	for key, s := range u.shared {
		if !want[key] {
			s.cancel()
			delete(u.shared, key)
		}
	}
	return nil
}

func (u *upsyncUpstream) reconcileDirectLocked(ctx context.Context, workspaces []string, gvrs []schema.GroupVersionResource) error {
	want := map[upstreamInformerKey]bool{}
	wantWorkspaces := map[string]bool{}
	for _, ws := range workspaces {
		wantWorkspaces[ws] = true
		for _, gvr := range gvrs {
			key := upstreamInformerKey{workspace: ws, gvr: gvr}
			want[key] = true
			if _, ok := u.direct[key]; ok {
				continue
			}
			upstreamDynamic, err := u.clientLocked(ws)
			if err != nil {
				return err
			}
			h, err := startInformer(ctx, upstreamDynamic, gvr, u.selector(), "", u.resync, objectHandler(func(upstreamObj *unstructured.Unstructured, deleted bool) {
				u.changed(ws, gvr, upstreamObj, deleted)
			}))
			if err != nil {
				return err
			}
			u.direct[key] = h
			klog.FromContext(ctx).V(2).Info("Started upstream upsync informer", "workspace", ws, "resource", gvr.String())
		}
	}
	for key, h := range u.direct {
		if !want[key] {
			h.stop()
			delete(u.direct, key)
		}
	}
	for ws := range u.clients {
		if !wantWorkspaces[ws] {
			delete(u.clients, ws)
		}
	}
	return nil
}

// copies returns the cache of gvr's copies in workspace ws.
func (u *upsyncUpstream) copies(ws string, gvr schema.GroupVersionResource) (cache.GenericLister, func() bool, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.shardOf == nil {
		h, ok := u.direct[upstreamInformerKey{workspace: ws, gvr: gvr}]
		if !ok {
			return nil, nil, false
		}
		return h.lister, h.hasSynced, true
	}
	url, ok := u.upsyncerURLLocked(ws)
	if !ok {
		return nil, nil, false
	}
	s, ok := u.shared[upstreamInformerKey{workspace: url, gvr: gvr}]
	if !ok {
		return nil, nil, false
	}
	return s.informer.Lister(ws), s.informer.HasSynced, true
}

// client returns the client of gvr's copies in workspace ws.
func (u *upsyncUpstream) client(ws string, gvr schema.GroupVersionResource) (dynamic.NamespaceableResourceInterface, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, err := u.clientLocked(ws)
	if err != nil {
		return nil, err
	}
	return c.Resource(gvr), nil
}

func (u *upsyncUpstream) clientLocked(ws string) (dynamic.Interface, error) {
	if c, ok := u.clients[ws]; ok {
		return c, nil
	}
	cfg, err := upstreamConfig(u.base, ws)
	if u.shardOf != nil {
		url, ok := u.upsyncerURLLocked(ws)
		if !ok {
			return nil, fmt.Errorf("workspace %s has no upsyncer view", ws)
		}
		cfg = rest.CopyConfig(u.base)
		cfg.Host, err = logicalcluster.WorkspaceURL(url, logicalcluster.NewPath(ws))
	}
	if err != nil {
		return nil, err
	}
	c, err := u.newDynamic(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create the upsync client of workspace %s: %w", ws, err)
	}
	u.clients[ws] = c
	return c, nil
}

// upsyncerURLLocked returns the upsyncer view of workspace ws's shard.
func (u *upsyncUpstream) upsyncerURLLocked(ws string) (string, bool) {
	shard, ok := u.shardOf(ws)
	if !ok {
		return "", false
	}
	url, ok := u.upsyncerURLs[shard]
	return url, ok
}

// stopAll stops every cache.
func (u *upsyncUpstream) stopAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for key, h := range u.direct {
		h.stop()
		<-h.done
		delete(u.direct, key)
	}
	for key, s := range u.shared {
		s.cancel()
		delete(u.shared, key)
	}
}
