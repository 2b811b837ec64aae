package syncer

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// replicaFailureCondition is the status condition the ReplicaSet controller sets when
	// it cannot create pods (Pod Security Admission, quota, ...) and the Deployment
	// controller copies onto the Deployment. It is set once and kept while the failure
	// lasts, so its reason and message stay the same between status writes.
	replicaFailureCondition = "ReplicaFailure"
	// podsRejectedReason is the reason of the Warning Event on the upstream workload.
	podsRejectedReason = "PodsRejected"
)

// replicaFailure is a ReplicaFailure=True condition of a status.
type replicaFailure struct {
	reason, message string
}

// reportRejections records a Warning Event on the upstream object when the downstream
// controllers cannot create its pods (condition ReplicaFailure=True downstream), once per
// failure: a failure the upstream side already shows (its .status, or the per-target status
// annotation of an object on several targets) was reported when it went up. Called before
// the status goes up; a restart therefore records nothing again.
func (c *statusController) reportRejections(upstream upstreamView, upstreamObj, downstreamObj *unstructured.Unstructured) {
	failure, ok := replicaFailureOf(downstreamObj.Object["status"])
	if !ok {
		return
	}
	if reported, ok := replicaFailureOf(c.upstreamStatus(upstreamObj)); ok && reported == failure {
		return
	}
	event(upstream, upstreamObj, corev1.EventTypeWarning, podsRejectedReason,
		rejectionMessage(c.target.name, downstreamObj.GetKind(), downstreamObj.GetName(), failure.reason, failure.message))
}

// rejectionMessage is the message of a PodsRejected Event: which SyncTarget's cluster
// refuses the pods of which downstream object, with the downstream reason and message.
func rejectionMessage(syncTargetName, downstreamKind, downstreamName, reason, message string) string {
	return fmt.Sprintf("The physical cluster of SyncTarget %s does not create the pods of %s %s (%s): %s",
		syncTargetName, downstreamKind, downstreamName, reason, message)
}

// upstreamStatus returns the downstream status last copied to upstreamObj by this target:
// its .status, or the per-target status annotation when the object is on several targets or
// another manager owns its .status (status_owner.go).
func (c *statusController) upstreamStatus(upstreamObj *unstructured.Unstructured) any {
	if _, ownedUpstream := otherStatusManager(upstreamObj); !onSeveralTargets(upstreamObj) && !ownedUpstream {
		return upstreamObj.Object["status"]
	}
	var status any
	if err := json.Unmarshal([]byte(upstreamObj.GetAnnotations()[workloadv1alpha1.StatusAnnotation(c.target.key)]), &status); err != nil {
		return nil
	}
	return status
}

// replicaFailureOf returns the ReplicaFailure=True condition of status, if it has one.
func replicaFailureOf(status any) (replicaFailure, bool) {
	s, ok := status.(map[string]any)
	if !ok {
		return replicaFailure{}, false
	}
	conditions, _ := s["conditions"].([]any)
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if !ok || cond["type"] != replicaFailureCondition || cond["status"] != string(corev1.ConditionTrue) {
			continue
		}
		reason, _ := cond["reason"].(string)
		message, _ := cond["message"].(string)
		return replicaFailure{reason: reason, message: message}, true
	}
	return replicaFailure{}, false
}
