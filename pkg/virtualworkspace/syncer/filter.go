package syncer

import (
	"fmt"
	"net/url"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// andStateSelector returns query with its labelSelector ANDed with
// state.workload.kcp.io/<stKey>=<state>. The caller's selector is parsed first, so that no
// selector text can change the meaning of the requirement added to it.
func andStateSelector(query url.Values, stKey, state string) (url.Values, error) {
	selector, err := labels.Parse(query.Get("labelSelector"))
	if err != nil {
		return nil, fmt.Errorf("invalid labelSelector: %w", err)
	}
	req, err := labels.NewRequirement(workloadv1alpha1.ClusterResourceStateLabel(stKey), selection.Equals, []string{state})
	if err != nil {
		return nil, fmt.Errorf("failed to build the state label requirement: %w", err)
	}
	out := url.Values{}
	for k, v := range query {
		out[k] = append([]string(nil), v...)
	}
	out.Set("labelSelector", selector.Add(*req).String())
	return out, nil
}

// syncedHere reports whether an object's labels place it on the target stKey in state Sync.
func syncedHere(objLabels map[string]string, stKey string) bool {
	return objLabels[workloadv1alpha1.ClusterResourceStateLabel(stKey)] == workloadv1alpha1.ResourceStateSync
}

// rootCAConfigMapName is the ConfigMap kcp and Kubernetes publish in every namespace with the
// cluster's CA bundle; the syncer copies it downstream as kcp-root-ca.crt.
const rootCAConfigMapName = "kube-root-ca.crt"

// isRootCACollection reports whether req lists or watches exactly the kube-root-ca.crt
// ConfigMaps: field selector metadata.name=kube-root-ca.crt and nothing else. They carry
// no state label (every namespace has one, whoever placed it) and hold only the workspace's
// public CA bundle, so the view serves them unfiltered by placement, as kcp's syncer view
// did for the CA it needs.
func isRootCACollection(req request, query url.Values) bool {
	if req.GR != (schema.GroupResource{Resource: "configmaps"}) || req.Version != "v1" || (req.Verb != verbList && req.Verb != verbWatch) {
		return false
	}
	selector, err := fields.ParseSelector(query.Get("fieldSelector"))
	if err != nil {
		return false
	}
	reqs := selector.Requirements()
	return len(reqs) == 1 && reqs[0].Field == "metadata.name" && reqs[0].Operator == selection.Equals && reqs[0].Value == rootCAConfigMapName
}
