package transform

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// podTemplatePaths are the paths of the pod template labels of the built-in workload types,
// by group and resource.
var podTemplatePaths = map[string][]string{
	"apps/deployments":  {"spec", "template", "metadata", "labels"},
	"apps/statefulsets": {"spec", "template", "metadata", "labels"},
	"apps/daemonsets":   {"spec", "template", "metadata", "labels"},
	"apps/replicasets":  {"spec", "template", "metadata", "labels"},
	"batch/jobs":        {"spec", "template", "metadata", "labels"},
	"batch/cronjobs":    {"spec", "jobTemplate", "spec", "template", "metadata", "labels"},
}

// PodUpsyncTransformer labels the pod template of Deployments, StatefulSets, DaemonSets,
// ReplicaSets, Jobs and CronJobs (their jobTemplate) with this target's state label
// state.workload.kcp.io/<key>=Upsync, so that the Pods the physical cluster creates from
// them are upsynced to the workspace; any other state label on the template is removed. The label is not part of any selector: the pods stay
// the workload's. Adding it changes the pod template, so a workload synced by a syncer
// without this transformer rolls out once.
type PodUpsyncTransformer struct{}

// Name implements Transformer.
func (PodUpsyncTransformer) Name() string { return "pod-upsync" }

// TransformDown implements Transformer.
func (PodUpsyncTransformer) TransformDown(_ context.Context, tc Context, _, downstream *unstructured.Unstructured) error {
	path, ok := podTemplatePaths[tc.GVR.Group+"/"+tc.GVR.Resource]
	if !ok {
		return nil
	}
	if _, found, err := unstructured.NestedFieldNoCopy(downstream.Object, path[:len(path)-2]...); err != nil || !found {
		// No pod template (an invalid object): the apiserver says so, not us.
		return nil
	}
	labels, _, err := unstructured.NestedStringMap(downstream.Object, path...)
	if err != nil {
		return &InvalidInputError{Reason: fmt.Sprintf("pod template labels: %v", err)}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	// Another target's state label on a template would upsync this cluster's pods there.
	for k := range labels {
		if strings.HasPrefix(k, workloadv1alpha1.ClusterResourceStateLabelPrefix) {
			delete(labels, k)
		}
	}
	labels[workloadv1alpha1.ClusterResourceStateLabel(tc.SyncTargetKey)] = workloadv1alpha1.ResourceStateUpsync
	if err := unstructured.SetNestedStringMap(downstream.Object, labels, path...); err != nil {
		return fmt.Errorf("failed to set the pod template labels: %w", err)
	}
	return nil
}
