package placement

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// locationChoice is the Location a Placement uses and everything derived from it.
type locationChoice struct {
	// path is the Placement's location workspace.
	path string
	// location is the selected Location; nil when none qualifies (reason, message say why).
	location *schedulingv1alpha1.Location
	reason   string
	message  string
	// instances are the SyncTargets of the selected Location, sorted by name.
	instances []*workloadv1alpha1.SyncTarget
	// eligible are the names of the SyncTargets that are instances of any Location matching
	// the Placement: a namespace already on one of them may stay there.
	eligible map[string]bool
	// unevaluable, when not empty, says which selector cannot be evaluated: a
	// locationSelector, or the instanceSelector of a matching Location. Which targets are
	// eligible is then unknown, so the Placement's namespaces keep their targets.
	unevaluable string
}

// chooseLocation selects the Location of a Placement from the caches. The Location in
// status.selectedLocation is kept while it still matches and has an available instance;
// otherwise the first matching Location by name with an available instance is chosen.
func (c *Controller) chooseLocation(p *schedulingv1alpha1.Placement, now time.Time) locationChoice {
	choice := locationChoice{path: p.Spec.LocationWorkspace, eligible: map[string]bool{}}
	lw, ok := c.location[p.Spec.LocationWorkspace]
	if !ok {
		choice.reason = schedulingv1alpha1.ReasonLocationNotFound
		choice.message = fmt.Sprintf("location workspace %q is not one of the location workspaces this controller watches (%s)",
			p.Spec.LocationWorkspace, strings.Join(c.locationPaths(), ", "))
		return choice
	}
	selectors := make([]labels.Selector, 0, len(p.Spec.LocationSelectors))
	for i := range p.Spec.LocationSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.LocationSelectors[i])
		if err != nil {
			choice.reason = schedulingv1alpha1.ReasonLocationInvalid
			choice.message = fmt.Sprintf("locationSelectors[%d] cannot be evaluated: %v", i, err)
			choice.unevaluable = choice.message
			return choice
		}
		selectors = append(selectors, sel)
	}
	locations, _ := lw.locations.List(labels.Everything())
	targets, _ := lw.syncTargets.List(labels.Everything())
	sort.Slice(locations, func(i, j int) bool { return locations[i].Name < locations[j].Name })
	sort.Slice(targets, func(i, j int) bool { return targets[i].Name < targets[j].Name })

	var matching []*schedulingv1alpha1.Location
	for _, loc := range locations {
		if matchesAny(selectors, loc.Labels) {
			matching = append(matching, loc)
		}
	}
	if len(matching) == 0 {
		choice.reason = schedulingv1alpha1.ReasonLocationNotFound
		choice.message = fmt.Sprintf("no Location in workspace %s matches the locationSelectors", p.Spec.LocationWorkspace)
		return choice
	}
	instancesOf := map[string][]*workloadv1alpha1.SyncTarget{}
	for _, loc := range matching {
		if err := instanceSelectorError(loc); err != nil {
			choice.reason = schedulingv1alpha1.ReasonLocationInvalid
			choice.message = fmt.Sprintf("the instanceSelector of Location %s cannot be evaluated: %v", loc.Name, err)
			choice.unevaluable = choice.message
			return choice
		}
		instancesOf[loc.Name] = instances(loc, targets)
		for _, st := range instancesOf[loc.Name] {
			choice.eligible[st.Name] = true
		}
	}
	hasAvailable := func(loc *schedulingv1alpha1.Location) bool {
		for _, st := range instancesOf[loc.Name] {
			if available(st, now) {
				return true
			}
		}
		return false
	}
	if sel := p.Status.SelectedLocation; sel != nil && sel.Path == p.Spec.LocationWorkspace {
		for _, loc := range matching {
			if loc.Name == sel.LocationName && hasAvailable(loc) {
				choice.location, choice.instances = loc, instancesOf[loc.Name]
				return choice
			}
		}
	}
	for _, loc := range matching {
		if hasAvailable(loc) {
			choice.location, choice.instances = loc, instancesOf[loc.Name]
			return choice
		}
	}
	names := make([]string, 0, len(matching))
	for _, loc := range matching {
		names = append(names, loc.Name)
	}
	choice.reason = schedulingv1alpha1.ReasonLocationNoMatch
	choice.message = fmt.Sprintf("Locations %s match the locationSelectors but none has an available SyncTarget (Ready, schedulable, not evicting)",
		listNames(names))
	return choice
}

func (c *Controller) locationPaths() []string {
	out := make([]string, 0, len(c.location))
	for p := range c.location {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// matchesAny reports whether set matches any selector; no selectors match everything.
func matchesAny(selectors []labels.Selector, set map[string]string) bool {
	if len(selectors) == 0 {
		return true
	}
	for _, sel := range selectors {
		if sel.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}

func instanceSelectorError(loc *schedulingv1alpha1.Location) error {
	if loc.Spec.InstanceSelector == nil {
		return nil
	}
	_, err := metav1.LabelSelectorAsSelector(loc.Spec.InstanceSelector)
	return err
}

// instances returns the targets (sorted) the Location's instanceSelector matches; nil or
// empty selects all, an invalid selector none (chooseLocation checks it first).
func instances(loc *schedulingv1alpha1.Location, targets []*workloadv1alpha1.SyncTarget) []*workloadv1alpha1.SyncTarget {
	sel := labels.Everything()
	if loc.Spec.InstanceSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(loc.Spec.InstanceSelector)
		if err != nil {
			return nil
		}
		sel = s
	}
	var out []*workloadv1alpha1.SyncTarget
	for _, st := range targets {
		if sel.Matches(labels.Set(st.Labels)) {
			out = append(out, st)
		}
	}
	return out
}

// readiness reports whether the target is Ready=True and, if not, since when (the Ready
// condition's lastTransitionTime, or the target's creation when it has no Ready condition).
func readiness(st *workloadv1alpha1.SyncTarget) (bool, time.Time) {
	cond := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetReady)
	if cond == nil {
		return false, st.CreationTimestamp.Time
	}
	return cond.Status == metav1.ConditionTrue, cond.LastTransitionTime.Time
}

// evicting reports whether spec.evictAfter has passed.
func evicting(st *workloadv1alpha1.SyncTarget, now time.Time) bool {
	return st.Spec.EvictAfter != nil && !now.Before(st.Spec.EvictAfter.Time)
}

// available reports whether the target may receive new namespaces: Ready, schedulable, not
// evicting and not being deleted.
func available(st *workloadv1alpha1.SyncTarget, now time.Time) bool {
	ready, _ := readiness(st)
	return ready && !st.Spec.Unschedulable && !evicting(st, now) && st.DeletionTimestamp == nil
}

// accepts reports whether the target's syncer accepted every type.
func accepts(st *workloadv1alpha1.SyncTarget, types []workloadv1alpha1.ResourceToSync) bool {
	for _, t := range types {
		ok := false
		for _, r := range st.Status.SyncedResources {
			if r.Group == t.Group && r.Resource == t.Resource && r.State == workloadv1alpha1.ResourceStateAccepted {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// targetRef is a SyncTarget with its location workspace.
type targetRef struct {
	path   string
	target *workloadv1alpha1.SyncTarget
}

// targetsByKey maps the key of every SyncTarget in every location workspace to it.
func (c *Controller) targetsByKey() map[string]targetRef {
	out := map[string]targetRef{}
	for path, lw := range c.location {
		targets, _ := lw.syncTargets.List(labels.Everything())
		for _, st := range targets {
			out[workloadv1alpha1.SyncTargetKeyOf(st, path)] = targetRef{path: path, target: st}
		}
	}
	return out
}

// verdict says whether a namespace may stay on its current target.
type verdict struct {
	valid bool
	// why the target is not valid, for Events and conditions.
	why string
	// held, on a valid verdict, says why the namespace stays on a target whose grace
	// period has run out: automatic failover would leave its persistent data behind.
	held string
	// recheckAt is when the verdict changes by time alone (zero: never).
	recheckAt time.Time
}

// judge decides whether a namespace may stay on the target with key stKey: the target
// exists, is an instance of a Location the Placement selects, is not evicting, and is Ready
// or not Ready for less than the grace period. Past the grace period the namespace still
// stays when hold (nil: never) gives a reason: it holds persistent data (persistent.go).
// Draining (evictAfter) and every other reason move it regardless.
func (c *Controller) judge(stKey string, targets map[string]targetRef, choice locationChoice, now time.Time, hold func(*workloadv1alpha1.SyncTarget) string) verdict {
	ref, ok := targets[stKey]
	if !ok {
		return verdict{why: "the SyncTarget no longer exists"}
	}
	st := ref.target
	if ref.path != choice.path || !choice.eligible[st.Name] {
		return verdict{why: fmt.Sprintf("SyncTarget %s is no longer an instance of a Location the Placement selects", st.Name)}
	}
	if st.DeletionTimestamp != nil {
		return verdict{why: fmt.Sprintf("SyncTarget %s is being deleted", st.Name)}
	}
	var v verdict
	if st.Spec.EvictAfter != nil {
		if evicting(st, now) {
			return verdict{why: fmt.Sprintf("SyncTarget %s is evicting (evictAfter %s)", st.Name, st.Spec.EvictAfter.UTC().Format(time.RFC3339))}
		}
		v.recheckAt = st.Spec.EvictAfter.Time
	}
	if ready, since := readiness(st); !ready {
		expiry := since.Add(c.grace)
		if !now.Before(expiry) {
			why := fmt.Sprintf("SyncTarget %s has not been Ready since %s (grace period %s)", st.Name, since.UTC().Format(time.RFC3339), c.grace)
			if hold != nil {
				if reason := hold(st); reason != "" {
					v.valid, v.held = true, why+", but "+reason
					return v
				}
			}
			return verdict{why: why}
		}
		if v.recheckAt.IsZero() || expiry.Before(v.recheckAt) {
			v.recheckAt = expiry
		}
	}
	v.valid = true
	return v
}

// candidates returns the instances of the selected Location that may receive the namespace:
// available, accepting every type in use, and not in exclude.
func (c *Controller) candidates(choice locationChoice, workspace, namespace string, exclude map[string]bool, now time.Time) []*workloadv1alpha1.SyncTarget {
	if choice.location == nil {
		return nil
	}
	var types []workloadv1alpha1.ResourceToSync
	if c.typesInUse != nil {
		types = c.typesInUse(workspace, namespace)
	}
	var out []*workloadv1alpha1.SyncTarget
	for _, st := range choice.instances {
		if exclude[workloadv1alpha1.SyncTargetKeyOf(st, choice.path)] || !available(st, now) || !accepts(st, types) {
			continue
		}
		out = append(out, st)
	}
	return out
}

// spreadHash breaks ties between equally loaded targets: deterministic, different per
// namespace (so namespaces spread), and independent of process state.
func spreadHash(workspace, namespace, target string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(workspace + "/" + namespace + "/" + target))
	return h.Sum64()
}

// schedulingInputs is what placement reads from a SyncTarget; heartbeats and other status
// churn outside it do not wake the controller.
type schedulingInputs struct {
	// Fields are exported because equality.Semantic cannot compare unexported ones.
	Labels        map[string]string
	Unschedulable bool
	EvictAfter    *metav1.Time
	Deleting      bool
	Ready         *metav1.Condition
	Resources     []workloadv1alpha1.SyncedResource
}

func inputsOf(st *workloadv1alpha1.SyncTarget) schedulingInputs {
	in := schedulingInputs{
		Labels:        st.Labels,
		Unschedulable: st.Spec.Unschedulable,
		EvictAfter:    st.Spec.EvictAfter,
		Deleting:      st.DeletionTimestamp != nil,
		Resources:     st.Status.SyncedResources,
	}
	if cond := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetReady); cond != nil {
		in.Ready = &metav1.Condition{Status: cond.Status, LastTransitionTime: cond.LastTransitionTime}
	}
	return in
}

func schedulingInputsChanged(oldST, newST *workloadv1alpha1.SyncTarget) bool {
	return !equality.Semantic.DeepEqual(inputsOf(oldST), inputsOf(newST))
}

// listNames joins at most ten names, then says how many more there are.
func listNames(names []string) string {
	const max = 10
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
