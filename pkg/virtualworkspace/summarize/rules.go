package summarize

// Count fields summed over the targets, per type.
var (
	deploymentCounts = []string{
		"replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas", "terminatingReplicas",
	}
	statefulSetCounts = []string{
		"replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas",
	}
	replicaSetCounts = []string{
		"replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "terminatingReplicas",
	}
	daemonSetCounts = []string{
		"currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
		"updatedNumberScheduled", "numberAvailable", "numberUnavailable",
	}
	jobCounts = []string{"active", "succeeded", "failed", "ready", "terminating"}
)

func aggregateDeployment(targets []TargetStatus) map[string]any {
	out := map[string]any{}
	sumCounts(out, targets, deploymentCounts)
	minObservedGeneration(out, targets)
	var conditions []any
	for _, conditionType := range []string{"Available", "Progressing"} {
		if c := allTrueCondition(targets, conditionType); c != nil {
			conditions = append(conditions, c)
		}
	}
	setConditions(out, conditions)
	return out
}

func aggregateStatefulSet(targets []TargetStatus) map[string]any {
	out := map[string]any{}
	sumCounts(out, targets, statefulSetCounts)
	minObservedGeneration(out, targets)
	for _, field := range []string{"currentRevision", "updateRevision"} {
		if v, ok := sameString(targets, field); ok {
			out[field] = v
		}
	}
	return out
}

func aggregateReplicaSet(targets []TargetStatus) map[string]any {
	out := map[string]any{}
	sumCounts(out, targets, replicaSetCounts)
	minObservedGeneration(out, targets)
	return out
}

func aggregateDaemonSet(targets []TargetStatus) map[string]any {
	out := map[string]any{}
	sumCounts(out, targets, daemonSetCounts)
	minObservedGeneration(out, targets)
	return out
}

func aggregateJob(targets []TargetStatus) map[string]any {
	out := map[string]any{}
	sumCounts(out, targets, jobCounts)
	if t, ok := earliestTime(targets, "startTime"); ok {
		out["startTime"] = t
	}
	if t, ok := latestTimeOfAll(targets, "completionTime"); ok {
		out["completionTime"] = t
	}
	var conditions []any
	if c := everyTrueCondition(targets, "Complete"); c != nil {
		conditions = append(conditions, c)
	}
	if c := anyTrueCondition(targets, "Failed"); c != nil {
		conditions = append(conditions, c)
	}
	setConditions(out, conditions)
	return out
}

func setConditions(out map[string]any, conditions []any) {
	if len(conditions) > 0 {
		out["conditions"] = conditions
	}
}
