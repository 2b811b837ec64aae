package syncer

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// Workload workspaces are watched by path (/clusters/<path>), but namespace locators — and
// so downstream namespace names — carry logical-cluster names, as kcp's do: kcp resolves a
// path such as root:org:ws to an opaque name and records it on every object
// (kcp.io/cluster). The engine learns each workspace's name once, before it watches
// anything there, and maps locators back to workspaces with it.

// clusterNameTimeout bounds the one request that learns a workspace's name.
const clusterNameTimeout = 10 * time.Second

// clusterNameResolver returns how the syncer learns the logical-cluster name of workspace
// ws: on a plain hub the name is hubWorkspace; on kcp it is the kcp.io/cluster annotation
// of the workspace's namespaces (every workspace holds "default"), read with one list of at
// most one namespace. An upstream that serves /clusters/ without the annotation names its
// workspaces by path. A workspace that cannot be read now, or lists no namespace, has no
// name yet: nothing is watched there until it has one, so no locator is ever computed from
// a guess.
func clusterNameResolver(base *rest.Config) func(context.Context, string) (string, error) {
	return func(ctx context.Context, ws string) (string, error) {
		if ws == hubWorkspace {
			return hubWorkspace, nil
		}
		cfg, err := upstreamConfig(base, ws)
		if err != nil {
			return "", err
		}
		cfg.Timeout = clusterNameTimeout
		upstreamKube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return "", fmt.Errorf("failed to create upstream client for workspace %s: %w", ws, err)
		}
		list, err := upstreamKube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return "", fmt.Errorf("failed to read the logical-cluster name of workspace %s: %w", ws, err)
		}
		if len(list.Items) == 0 {
			return "", fmt.Errorf("workspace %s lists no namespace to read its logical-cluster name from", ws)
		}
		return logicalcluster.NameOr(list.Items[0].Annotations, ws), nil
	}
}

// nameWorkspaces learns, outside the engine lock, the names of the given workspaces that
// have none yet. Without a resolver (tests) a workspace's name is its path.
func (e *engine) nameWorkspaces(ctx context.Context, workspaces []string) {
	e.mu.RLock()
	var unnamed []string
	for _, ws := range workspaces {
		if _, ok := e.clusterNames[ws]; !ok {
			unnamed = append(unnamed, ws)
		}
	}
	e.mu.RUnlock()
	learned := map[string]string{}
	failed := map[string]error{}
	for _, ws := range unnamed {
		if e.resolveClusterName == nil {
			learned[ws] = ws
			continue
		}
		name, err := e.resolveClusterName(ctx, ws)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Workspace not watched until its logical-cluster name is known; retrying", "workspace", ws)
			failed[ws] = err
			continue
		}
		learned[ws] = name
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for ws, err := range failed {
		e.nameErrors[ws] = err
	}
	for ws, name := range learned {
		delete(e.nameErrors, ws)
		e.clusterNames[ws] = name
		e.workspacesByName[name] = ws
		klog.FromContext(ctx).V(2).Info("Learned the logical-cluster name of a workspace", "workspace", ws, "logicalCluster", name)
	}
}

// forgetWorkspaceNameLocked drops what the engine knows of ws's name. The caller holds e.mu.
func (e *engine) forgetWorkspaceNameLocked(ws string) {
	delete(e.nameErrors, ws)
	if name, ok := e.clusterNames[ws]; ok {
		delete(e.workspacesByName, name)
		delete(e.clusterNames, ws)
	}
}

// clusterName returns the logical-cluster name of watched workspace ws.
func (e *engine) clusterName(ws string) (string, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	name, ok := e.clusterNames[ws]
	return name, ok
}

// workspaceOf returns the watched workspace whose logical-cluster name is name (a
// locator's cluster).
func (e *engine) workspaceOf(name string) (string, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ws, ok := e.workspacesByName[name]
	return ws, ok
}
