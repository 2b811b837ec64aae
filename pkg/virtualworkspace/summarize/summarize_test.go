package summarize

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	deployments  = schema.GroupResource{Group: "apps", Resource: "deployments"}
	statefulSets = schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	replicaSets  = schema.GroupResource{Group: "apps", Resource: "replicasets"}
	daemonSets   = schema.GroupResource{Group: "apps", Resource: "daemonsets"}
	jobs         = schema.GroupResource{Group: "batch", Resource: "jobs"}
	configMaps   = schema.GroupResource{Resource: "configmaps"}
	services     = schema.GroupResource{Resource: "services"}
)

func cond(conditionType, status, reason, message string) map[string]any {
	c := map[string]any{"type": conditionType, "status": status}
	if reason != "" {
		c["reason"] = reason
	}
	if message != "" {
		c["message"] = message
	}
	return c
}

func conds(cs ...map[string]any) []any {
	out := make([]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, c)
	}
	return out
}

func targets(statuses ...map[string]any) []TargetStatus {
	keys := []string{"east", "north", "west"}
	out := make([]TargetStatus, 0, len(statuses))
	for i, s := range statuses {
		out = append(out, TargetStatus{Key: keys[i], Status: s})
	}
	return out
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		gr      schema.GroupResource
		targets []TargetStatus
		want    map[string]any
		wantOK  bool
	}{
		{name: "no target: nothing to write", gr: deployments, targets: nil, wantOK: false},
		{
			name:    "one target of a type without rules: its status exactly",
			gr:      services,
			targets: targets(map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"ip": "10.0.0.1"}}}}),
			want:    map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"ip": "10.0.0.1"}}}},
			wantOK:  true,
		},
		{
			name:    "one target of a type with rules: its status exactly, not aggregated",
			gr:      deployments,
			targets: targets(map[string]any{"replicas": float64(2), "collisionCount": float64(1), "conditions": conds(cond("ReplicaFailure", "True", "", ""))}),
			want:    map[string]any{"replicas": float64(2), "collisionCount": float64(1), "conditions": conds(cond("ReplicaFailure", "True", "", ""))},
			wantOK:  true,
		},
		{name: "several targets of a type without rules: leave .status", gr: configMaps, targets: targets(map[string]any{}, map[string]any{}), wantOK: false},
		{name: "several targets of services: leave .status", gr: services, targets: targets(map[string]any{"a": "b"}, map[string]any{"a": "b"}), wantOK: false},
		{
			name: "deployment: counts summed, observedGeneration the minimum, all-True conditions",
			gr:   deployments,
			targets: targets(
				map[string]any{"replicas": int64(2), "updatedReplicas": int64(2), "readyReplicas": int64(2), "availableReplicas": int64(2), "observedGeneration": int64(4),
					"conditions": conds(cond("Available", "True", "MinimumReplicasAvailable", "ok"), cond("Progressing", "True", "NewReplicaSetAvailable", ""))},
				map[string]any{"replicas": float64(3), "updatedReplicas": float64(3), "readyReplicas": float64(3), "availableReplicas": float64(3), "unavailableReplicas": float64(0), "observedGeneration": float64(3),
					"collisionCount": float64(2),
					"conditions":     conds(cond("Progressing", "True", "NewReplicaSetAvailable", ""), cond("Available", "True", "MinimumReplicasAvailable", "fine"), cond("ReplicaFailure", "True", "", ""))},
			),
			want: map[string]any{"replicas": int64(5), "updatedReplicas": int64(5), "readyReplicas": int64(5), "availableReplicas": int64(5), "unavailableReplicas": int64(0), "observedGeneration": int64(3),
				"conditions": conds(cond("Available", "True", "MinimumReplicasAvailable", "ok"), cond("Progressing", "True", "NewReplicaSetAvailable", ""))},
			wantOK: true,
		},
		{
			name: "deployment: a non-True condition wins and names every target where it is not True",
			gr:   deployments,
			targets: targets(
				map[string]any{"conditions": conds(cond("Available", "True", "MinimumReplicasAvailable", ""))},
				map[string]any{"conditions": conds(cond("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."))},
				map[string]any{},
			),
			want: map[string]any{"conditions": conds(cond("Available", "False", "MinimumReplicasUnavailable",
				"Available is not True on SyncTarget(s) north, west: Deployment does not have minimum availability."))},
			wantOK: true,
		},
		{
			name: "deployment: a target not reporting the condition first makes it Unknown",
			gr:   deployments,
			targets: targets(
				map[string]any{"replicas": int64(1)},
				map[string]any{"conditions": conds(cond("Progressing", "True", "NewReplicaSetAvailable", ""))},
			),
			want: map[string]any{"replicas": int64(1),
				"conditions": conds(cond("Progressing", "Unknown", "NotReported", "Progressing is not True on SyncTarget(s) east"))},
			wantOK: true,
		},
		{
			name:    "deployment: missing statuses count as zero and invent nothing",
			gr:      deployments,
			targets: targets(nil, map[string]any{"readyReplicas": int64(3), "observedGeneration": int64(2)}),
			want:    map[string]any{"readyReplicas": int64(3), "observedGeneration": int64(0)},
			wantOK:  true,
		},
		{
			name:    "deployment: no target reported anything",
			gr:      deployments,
			targets: targets(nil, map[string]any{}),
			want:    map[string]any{},
			wantOK:  true,
		},
		{
			name: "statefulset: counts summed, revisions kept when equal",
			gr:   statefulSets,
			targets: targets(
				map[string]any{"replicas": int64(1), "readyReplicas": int64(1), "currentReplicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(1),
					"observedGeneration": int64(2), "currentRevision": "web-1", "updateRevision": "web-2", "collisionCount": int64(0)},
				map[string]any{"replicas": int64(2), "readyReplicas": int64(1), "currentReplicas": int64(2), "updatedReplicas": int64(0), "availableReplicas": int64(1),
					"observedGeneration": int64(2), "currentRevision": "web-1", "updateRevision": "web-1"},
			),
			want: map[string]any{"replicas": int64(3), "readyReplicas": int64(2), "currentReplicas": int64(3), "updatedReplicas": int64(1), "availableReplicas": int64(2),
				"observedGeneration": int64(2), "currentRevision": "web-1"},
			wantOK: true,
		},
		{
			name:    "statefulset: a revision one target lacks is dropped",
			gr:      statefulSets,
			targets: targets(map[string]any{"updateRevision": "web-1"}, map[string]any{}),
			want:    map[string]any{},
			wantOK:  true,
		},
		{
			name: "replicaset: counts summed, observedGeneration the minimum",
			gr:   replicaSets,
			targets: targets(
				map[string]any{"replicas": int64(2), "fullyLabeledReplicas": int64(2), "readyReplicas": int64(1), "availableReplicas": int64(1), "observedGeneration": int64(5)},
				map[string]any{"replicas": int64(1), "fullyLabeledReplicas": int64(1), "readyReplicas": int64(1), "availableReplicas": int64(1), "observedGeneration": int64(6),
					"conditions": conds(cond("ReplicaFailure", "True", "", ""))},
			),
			want:   map[string]any{"replicas": int64(3), "fullyLabeledReplicas": int64(3), "readyReplicas": int64(2), "availableReplicas": int64(2), "observedGeneration": int64(5)},
			wantOK: true,
		},
		{
			name: "daemonset: counts summed, observedGeneration the minimum",
			gr:   daemonSets,
			targets: targets(
				map[string]any{"currentNumberScheduled": int64(3), "numberMisscheduled": int64(0), "desiredNumberScheduled": int64(3), "numberReady": int64(3),
					"updatedNumberScheduled": int64(3), "numberAvailable": int64(3), "observedGeneration": int64(1)},
				map[string]any{"currentNumberScheduled": int64(2), "numberMisscheduled": int64(1), "desiredNumberScheduled": int64(2), "numberReady": int64(1),
					"updatedNumberScheduled": int64(2), "numberAvailable": int64(1), "numberUnavailable": int64(1), "observedGeneration": int64(1)},
			),
			want: map[string]any{"currentNumberScheduled": int64(5), "numberMisscheduled": int64(1), "desiredNumberScheduled": int64(5), "numberReady": int64(4),
				"updatedNumberScheduled": int64(5), "numberAvailable": int64(4), "numberUnavailable": int64(1), "observedGeneration": int64(1)},
			wantOK: true,
		},
		{
			name: "job: every target complete",
			gr:   jobs,
			targets: targets(
				map[string]any{"succeeded": int64(2), "ready": int64(0), "startTime": "2026-03-01T10:00:05Z", "completionTime": "2026-03-01T10:02:00Z",
					"conditions": conds(cond("SuccessCriteriaMet", "True", "", ""), cond("Complete", "True", "", ""))},
				map[string]any{"succeeded": int64(3), "ready": int64(0), "startTime": "2026-03-01T10:00:00Z", "completionTime": "2026-03-01T10:03:00Z",
					"conditions": conds(cond("Complete", "True", "", ""))},
			),
			want: map[string]any{"succeeded": int64(5), "ready": int64(0), "startTime": "2026-03-01T10:00:00Z", "completionTime": "2026-03-01T10:03:00Z",
				"conditions": conds(cond("Complete", "True", "", ""))},
			wantOK: true,
		},
		{
			name: "job: one target still running: no completion time, not Complete",
			gr:   jobs,
			targets: targets(
				map[string]any{"succeeded": int64(2), "startTime": "2026-03-01T10:00:00Z", "completionTime": "2026-03-01T10:02:00Z",
					"conditions": conds(cond("Complete", "True", "", ""))},
				map[string]any{"active": int64(1), "terminating": int64(1), "startTime": "2026-03-01T10:00:30Z"},
			),
			want:   map[string]any{"succeeded": int64(2), "active": int64(1), "terminating": int64(1), "startTime": "2026-03-01T10:00:00Z"},
			wantOK: true,
		},
		{
			name: "job: Failed on one target fails the job and names the target",
			gr:   jobs,
			targets: targets(
				map[string]any{"succeeded": int64(1), "conditions": conds(cond("Complete", "True", "", ""))},
				map[string]any{"failed": int64(4), "conditions": conds(cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))},
			),
			want: map[string]any{"succeeded": int64(1), "failed": int64(4),
				"conditions": conds(cond("Failed", "True", "BackoffLimitExceeded", "Failed on SyncTarget(s) north: Job has reached the specified backoff limit"))},
			wantOK: true,
		},
		{
			name:    "job: a Failed condition that is False does not fail it",
			gr:      jobs,
			targets: targets(map[string]any{"conditions": conds(cond("Failed", "False", "", ""))}, nil),
			want:    map[string]any{},
			wantOK:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Summarize(tt.gr, tt.targets)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("status =\n  %#v\nwant\n  %#v", got, tt.want)
			}
		})
	}
}

func TestSummarizeDoesNotAliasInputs(t *testing.T) {
	one := map[string]any{"conditions": conds(cond("Available", "True", "", ""))}
	got, _ := Summarize(deployments, targets(one))
	got["conditions"].([]any)[0].(map[string]any)["status"] = "False"
	if one["conditions"].([]any)[0].(map[string]any)["status"] != "True" {
		t.Error("the one-target status aliases the input")
	}

	a := map[string]any{"conditions": conds(cond("Available", "True", "", "a"))}
	b := map[string]any{"conditions": conds(cond("Available", "True", "", "b"))}
	got, _ = Summarize(deployments, targets(a, b))
	got["conditions"].([]any)[0].(map[string]any)["message"] = "changed"
	if a["conditions"].([]any)[0].(map[string]any)["message"] != "a" {
		t.Error("the aggregated status aliases an input condition")
	}
}

func TestHasRules(t *testing.T) {
	for _, gr := range []schema.GroupResource{deployments, statefulSets, replicaSets, daemonSets, jobs} {
		if !HasRules(gr) {
			t.Errorf("HasRules(%s) = false", gr)
		}
	}
	if HasRules(configMaps) {
		t.Error("HasRules(configmaps) = true")
	}
}
