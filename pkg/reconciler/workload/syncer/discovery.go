package syncer

import (
	"context"
	"fmt"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// syncVerbs are the verbs the syncer needs on every synced resource type downstream.
var syncVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// resourceInfo describes one resource type the syncer syncs.
type resourceInfo struct {
	// gvr is the downstream preferred version; the upstream is read at the same version.
	gvr       schema.GroupVersionResource
	kind      string
	hasStatus bool
	// clusterScoped is set for the one cluster-scoped type synced, persistentvolumes
	// (volumes.go).
	clusterScoped bool
}

// label is the bounded metric label for the type, e.g. "deployments.apps/v1".
func (r resourceInfo) label() string {
	gr := r.gvr.GroupResource().String()
	return gr + "/" + r.gvr.Version
}

// discoverResources checks each requested resource type against the downstream cluster:
// it must exist, be namespaced (or be persistentvolumes, volumes.go), and the syncer must hold every verb it needs (checked
// with one SelfSubjectAccessReview per verb). It returns the accepted types and the
// per-type states for SyncTarget.status.syncedResources.
func discoverResources(ctx context.Context, disco discovery.DiscoveryInterface, kube kubernetes.Interface, requested []workloadv1alpha1.ResourceToSync) ([]resourceInfo, []workloadv1alpha1.SyncedResource, error) {
	groups, err := disco.ServerGroups()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to discover downstream API groups: %w", err)
	}
	preferred := map[string]string{}
	all := map[string][]string{}
	for _, g := range groups.Groups {
		preferred[g.Name] = g.PreferredVersion.Version
		for _, v := range g.Versions {
			all[g.Name] = append(all[g.Name], v.Version)
		}
	}

	var accepted []resourceInfo
	var states []workloadv1alpha1.SyncedResource
	resourceLists := map[string]*metav1.APIResourceList{}
	for _, req := range requested {
		state := workloadv1alpha1.SyncedResource{ResourceToSync: req, State: workloadv1alpha1.ResourceStateIncompatible}
		version, ok := preferred[req.Group]
		if !ok {
			state.Message = fmt.Sprintf("API group %q is not served by the physical cluster", req.Group)
			states = append(states, state)
			continue
		}
		gv := schema.GroupVersion{Group: req.Group, Version: version}
		list, ok := resourceLists[gv.String()]
		if !ok {
			list, err = disco.ServerResourcesForGroupVersion(gv.String())
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, nil, fmt.Errorf("failed to discover downstream resources of %s: %w", gv, err)
			}
			resourceLists[gv.String()] = list
		}
		var found *metav1.APIResource
		hasStatus := false
		if list != nil {
			for i := range list.APIResources {
				r := &list.APIResources[i]
				switch r.Name {
				case req.Resource:
					found = r
				case req.Resource + "/status":
					hasStatus = true
				}
			}
		}
		switch {
		case found == nil:
			state.Message = fmt.Sprintf("resource %s is not served by the physical cluster", req.String())
		case !found.Namespaced && !syncedClusterScoped(gv.WithResource(req.Resource).GroupResource()):
			state.Message = fmt.Sprintf("%s is cluster-scoped; only namespaced resources and persistentvolumes are synced", req.String())
		default:
			state.Versions = append([]string{version}, without(all[req.Group], version)...)
			missing, err := missingVerbs(ctx, kube, gv.WithResource(req.Resource))
			if err != nil {
				return nil, nil, err
			}
			if len(missing) > 0 {
				state.State = workloadv1alpha1.ResourceStateUnauthorized
				state.Message = fmt.Sprintf("the syncer may not %s %s in the physical cluster", strings.Join(missing, ", "), req.String())
			} else {
				state.State = workloadv1alpha1.ResourceStateAccepted
				accepted = append(accepted, resourceInfo{gvr: gv.WithResource(req.Resource), kind: found.Kind, hasStatus: hasStatus, clusterScoped: !found.Namespaced})
			}
		}
		states = append(states, state)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].String() < states[j].String() })
	return accepted, states, nil
}

func without(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// missingVerbs returns the verbs the syncer lacks on gvr in all namespaces.
func missingVerbs(ctx context.Context, kube kubernetes.Interface, gvr schema.GroupVersionResource) ([]string, error) {
	var missing []string
	for _, verb := range syncVerbs {
		review := &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb:     verb,
					Group:    gvr.Group,
					Version:  gvr.Version,
					Resource: gvr.Resource,
				},
			},
		}
		resp, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("failed to review access to %s: %w", gvr.GroupResource(), err)
		}
		if !resp.Status.Allowed {
			missing = append(missing, verb)
		}
	}
	return missing, nil
}
