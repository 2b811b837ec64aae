package pods

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// workspaceOf returns the workspace of a server URL: what follows /clusters/ in its path.
func workspaceOf(host string) (string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Errorf("failed to parse the server URL %q: %w", host, err)
	}
	_, p := logicalcluster.SplitClusterURL(u.Path)
	if p.Empty() {
		return "", fmt.Errorf("the server URL %q names no workspace (/clusters/<workspace>): pod access needs kcp mode and its virtual-workspace server", host)
	}
	return p.String(), nil
}

// podAccessURL returns the pod-access view's URL of workspace on the virtual-workspace server
// vw: <vw>/services/pods/clusters/<workspace>.
func podAccessURL(vw, workspace string) (string, error) {
	u, err := url.Parse(vw)
	if err != nil {
		return "", fmt.Errorf("failed to parse the virtual-workspace URL %q: %w", vw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("the virtual-workspace URL %q is not an http(s)://host URL", vw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("the virtual-workspace URL %q must have no query or fragment", vw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + workloadv1alpha1.PodAccessVirtualWorkspacePrefix + "clusters/" + workspace
	u.RawPath = ""
	return u.String(), nil
}

// serverOfViewURL returns the virtual-workspace server part of a view URL: everything
// before /services/.
func serverOfViewURL(viewURL string) (string, bool) {
	i := strings.Index(viewURL, "/services/")
	if i <= 0 {
		return "", false
	}
	return viewURL[:i], true
}

// virtualWorkspaceFromSyncTargets returns the virtual-workspace server of the first
// SyncTarget, in name order, of the workspace of cfg whose status names a syncer view.
func virtualWorkspaceFromSyncTargets(ctx context.Context, cfg *rest.Config) (string, error) {
	client, err := tmcclient.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("failed to create a client: %w", err)
	}
	targets, err := client.WorkloadV1alpha1().SyncTargets().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("no --virtual-workspace-url, and the SyncTargets of the workspace could not be listed to find it: %w", err)
	}
	items := targets.Items
	slices.SortFunc(items, func(a, b workloadv1alpha1.SyncTarget) int { return strings.Compare(a.Name, b.Name) })
	for _, st := range items {
		for _, vw := range st.Status.VirtualWorkspaces {
			if server, ok := serverOfViewURL(vw.SyncerURL); ok {
				return server, nil
			}
		}
	}
	return "", fmt.Errorf("no --virtual-workspace-url, and no SyncTarget of the workspace (%d) names a virtual-workspace server in status.virtualWorkspaces: pass --virtual-workspace-url", len(items))
}
