package summarize

import (
	"encoding/json"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

// Condition statuses and the reason of a condition a target did not report.
const (
	conditionTrue     = "True"
	conditionUnknown  = "Unknown"
	reasonNotReported = "NotReported"
)

// integer returns status[field] as an int64; ok is false when it is absent or not a number.
func integer(status map[string]any, field string) (int64, bool) {
	switch v := status[field].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case float64:
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	}
	return 0, false
}

// sumCounts sets, for each field at least one target reported, the sum over the targets
// (a target without it counts 0). A field no target reported stays absent.
func sumCounts(out map[string]any, targets []TargetStatus, fields []string) {
	for _, field := range fields {
		var sum int64
		reported := false
		for _, t := range targets {
			if n, ok := integer(t.Status, field); ok {
				sum += n
				reported = true
			}
		}
		if reported {
			out[field] = sum
		}
	}
}

// minObservedGeneration sets observedGeneration to the minimum over the targets (a target
// without it counts 0, so the aggregate is observed only once every target observed it),
// when at least one target reported it.
func minObservedGeneration(out map[string]any, targets []TargetStatus) {
	const field = "observedGeneration"
	var lowest int64
	reported := false
	for i, t := range targets {
		n, ok := integer(t.Status, field)
		reported = reported || ok
		if i == 0 || n < lowest {
			lowest = n
		}
	}
	if reported {
		out[field] = lowest
	}
}

// sameString returns status[field] when every target reported the same non-empty value.
func sameString(targets []TargetStatus, field string) (string, bool) {
	var first string
	for i, t := range targets {
		v, _ := t.Status[field].(string)
		if v == "" || (i > 0 && v != first) {
			return "", false
		}
		first = v
	}
	return first, true
}

// timeOf parses status[field], an RFC 3339 timestamp.
func timeOf(status map[string]any, field string) (string, time.Time, bool) {
	s, _ := status[field].(string)
	if s == "" {
		return "", time.Time{}, false
	}
	parsed, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return "", time.Time{}, false
	}
	return s, parsed, true
}

// earliestTime returns the earliest status[field] among the targets reporting one.
func earliestTime(targets []TargetStatus, field string) (string, bool) {
	var best string
	var bestTime time.Time
	for _, t := range targets {
		if s, parsed, ok := timeOf(t.Status, field); ok && (best == "" || parsed.Before(bestTime)) {
			best, bestTime = s, parsed
		}
	}
	return best, best != ""
}

// latestTimeOfAll returns the latest status[field] when every target reported one.
func latestTimeOfAll(targets []TargetStatus, field string) (string, bool) {
	var best string
	var bestTime time.Time
	for _, t := range targets {
		s, parsed, ok := timeOf(t.Status, field)
		if !ok {
			return "", false
		}
		if best == "" || parsed.After(bestTime) {
			best, bestTime = s, parsed
		}
	}
	return best, true
}

// condition returns the condition of type conditionType in status.conditions, or nil.
func condition(status map[string]any, conditionType string) map[string]any {
	conditions, _ := status["conditions"].([]any)
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == conditionType {
			return m
		}
	}
	return nil
}

func isTrue(c map[string]any) bool { return c != nil && c["status"] == conditionTrue }

// allTrueCondition returns the aggregate of conditionType: the first target's condition
// when it is True on every target, else the first target's non-True one (Unknown when it
// did not report it) with a message naming every target where it is not True. nil when no
// target reported it.
func allTrueCondition(targets []TargetStatus, conditionType string) map[string]any {
	var first map[string]any
	var notTrueKeys []string
	var firstNotTrue map[string]any
	firstNotTrueFound := false
	for _, t := range targets {
		c := condition(t.Status, conditionType)
		if c != nil && first == nil {
			first = c
		}
		if !isTrue(c) {
			notTrueKeys = append(notTrueKeys, t.Key)
			if !firstNotTrueFound {
				firstNotTrue, firstNotTrueFound = c, true
			}
		}
	}
	switch {
	case first == nil:
		return nil
	case len(notTrueKeys) == 0:
		return copyCondition(first)
	}
	out := copyCondition(firstNotTrue)
	if firstNotTrue == nil {
		out = map[string]any{"type": conditionType, "status": conditionUnknown, "reason": reasonNotReported}
	}
	out["message"] = withTargets(conditionType+" is not True on SyncTarget(s) ", notTrueKeys, out["message"])
	return out
}

// everyTrueCondition returns the first target's condition of conditionType when it is True
// on every target, else nil.
func everyTrueCondition(targets []TargetStatus, conditionType string) map[string]any {
	for _, t := range targets {
		if !isTrue(condition(t.Status, conditionType)) {
			return nil
		}
	}
	return copyCondition(condition(targets[0].Status, conditionType))
}

// anyTrueCondition returns the first True condition of conditionType with a message naming
// every target where it is True, or nil when it is True on none.
func anyTrueCondition(targets []TargetStatus, conditionType string) map[string]any {
	var first map[string]any
	var keys []string
	for _, t := range targets {
		if c := condition(t.Status, conditionType); isTrue(c) {
			if first == nil {
				first = c
			}
			keys = append(keys, t.Key)
		}
	}
	if first == nil {
		return nil
	}
	out := copyCondition(first)
	out["message"] = withTargets(conditionType+" on SyncTarget(s) ", keys, out["message"])
	return out
}

func copyCondition(c map[string]any) map[string]any {
	if c == nil {
		return map[string]any{}
	}
	return runtime.DeepCopyJSON(c)
}

// withTargets is prefix, the keys, and the target's own message after a colon if any.
func withTargets(prefix string, keys []string, message any) string {
	s := prefix + strings.Join(keys, ", ")
	if m, _ := message.(string); m != "" {
		s += ": " + m
	}
	return s
}
