package syncer

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// upstreamConfig returns the config of upstream workspace ws: the base config itself on a
// plain hub, else its /clusters/<ws> URL.
func upstreamConfig(base *rest.Config, ws string) (*rest.Config, error) {
	cfg := rest.CopyConfig(base)
	if ws == hubWorkspace {
		return cfg, nil
	}
	u, err := logicalcluster.WorkspaceURL(cfg.Host, logicalcluster.NewPath(ws))
	if err != nil {
		return nil, err
	}
	cfg.Host = u
	return cfg, nil
}

// workspaceConfigFunc returns the config of a workload workspace.
type workspaceConfigFunc func(ws string) (*rest.Config, error)

// directConfig reaches each workspace at base's /clusters/<ws> (base itself on a hub).
func directConfig(base *rest.Config) workspaceConfigFunc {
	return func(ws string) (*rest.Config, error) { return upstreamConfig(base, ws) }
}

// newUpstreamWorkspaceFunc returns the constructor of the upstream clients of a workload
// workspace, reached with configFor; Events go into that workspace.
func newUpstreamWorkspaceFunc(configFor workspaceConfigFunc, syncTargetName string) func(context.Context, string) (*upstreamWorkspace, error) {
	return func(ctx context.Context, ws string) (*upstreamWorkspace, error) {
		cfg, err := configFor(ws)
		if err != nil {
			return nil, err
		}
		upstreamDynamic, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("failed to create upstream client for workspace %s: %w", ws, err)
		}
		upstreamKube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("failed to create upstream client for workspace %s: %w", ws, err)
		}
		recorder, stopEvents := tmc.NewEventRecorder(ctx, upstreamKube.CoreV1().Events(""), scheme.Scheme, corev1.EventSource{Component: "workload-syncer", Host: syncTargetName})
		return &upstreamWorkspace{dynamic: upstreamDynamic, kube: upstreamKube, recorder: recorder, stopEvents: stopEvents}, nil
	}
}

// servedUpstream checks with discovery, outside the engine lock and with a timeout, which
// of the given (workspace, resource) pairs their workspace serves.
func servedUpstream(ctx context.Context, configFor workspaceConfigFunc, keys []upstreamInformerKey) map[upstreamInformerKey]bool {
	out := map[upstreamInformerKey]bool{}
	lists := map[string]*metav1.APIResourceList{}
	for _, key := range keys {
		gv := key.gvr.GroupVersion().String()
		id := key.workspace + "|" + gv
		list, ok := lists[id]
		if !ok {
			list = discoverUpstream(ctx, configFor, key.workspace, gv)
			lists[id] = list
		}
		if list == nil {
			continue
		}
		for _, r := range list.APIResources {
			if r.Name == key.gvr.Resource {
				out[key] = true
			}
		}
	}
	return out
}

// discoverUpstream returns the resources of group version gv in upstream workspace ws, nil
// if they cannot be discovered now.
func discoverUpstream(ctx context.Context, configFor workspaceConfigFunc, ws, gv string) *metav1.APIResourceList {
	cfg, err := configFor(ws)
	if err != nil {
		return nil
	}
	cfg.Timeout = 10 * time.Second
	upstreamDiscovery, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil
	}
	list, err := upstreamDiscovery.ServerResourcesForGroupVersion(gv)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Cannot discover upstream resources", "workspace", ws, "groupVersion", gv, "err", err)
		return nil
	}
	return list
}
