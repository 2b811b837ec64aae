package inspect

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// describeSyncTarget prints the detailed view of one SyncTarget in workspace ws, in the
// style of kubectl describe: a header, then one section per part of the status, "<none>"
// for an empty one.
func describeSyncTarget(out io.Writer, ws string, st *workloadv1alpha1.SyncTarget, now time.Time) error {
	d := &describer{out: out}

	d.err = tabulate(out, func(w *strings.Builder) {
		fmt.Fprintf(w, "Name:\t%s\n", st.Name)
		fmt.Fprintf(w, "Workspace:\t%s\n", ws)
		fmt.Fprintf(w, "Key:\t%s\n", workloadv1alpha1.SyncTargetKeyOf(st, ws))
		fmt.Fprintf(w, "UID:\t%s\n", orNone(string(st.UID)))
		fmt.Fprintf(w, "Labels:\t%s\n", joinMap(st.Labels, "="))
		fmt.Fprintf(w, "Cells:\t%s\n", joinMap(st.Spec.Cells, "="))
		fmt.Fprintf(w, "Ready:\t%s\n", readyStatus(st))
		fmt.Fprintf(w, "Schedulable:\t%s\n", schedulable(st, now))
		fmt.Fprintf(w, "Confined:\t%s\n", confinedStatus(st))
		if st.Spec.EvictAfter != nil {
			fmt.Fprintf(w, "Evict after:\t%s\n", timeAndAge(st.Spec.EvictAfter.Time, now))
		}
		heartbeat := "never"
		if st.Status.LastSyncerHeartbeatTime != nil {
			heartbeat = timeAndAge(st.Status.LastSyncerHeartbeatTime.Time, now)
		}
		fmt.Fprintf(w, "Heartbeat:\t%s\n", heartbeat)
		counts, releasing := acceptedCounts(st)
		if releasing > 0 {
			fmt.Fprintf(w, "Resources:\t%s accepted, %d releasing (no longer synced; upstream finalizers being released, copies kept)\n", counts, releasing)
		} else {
			fmt.Fprintf(w, "Resources:\t%s accepted\n", counts)
		}
		fmt.Fprintf(w, "Errors:\t%d\n", errorTotal(st))
	})

	describeStatusLists(d, st, now)
	describeQuantities(d, st)
	describeSyncerAndErrors(d, st, now)
	return d.err
}

// describeStatusLists writes the conditions, synced resources and workspaces.
func describeStatusLists(d *describer, st *workloadv1alpha1.SyncTarget, now time.Time) {
	d.section("Conditions", len(st.Status.Conditions), func(w *strings.Builder) {
		fmt.Fprintln(w, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
		for _, c := range st.Status.Conditions {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(c.LastTransitionTime.Time, now), oneLine(c.Message))
		}
	})

	d.section("Synced resources", len(st.Status.SyncedResources), func(w *strings.Builder) {
		fmt.Fprintln(w, "  RESOURCE\tVERSIONS\tSTATE\tMESSAGE")
		for _, r := range st.Status.SyncedResources {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", r.String(), orNone(strings.Join(r.Versions, ",")), r.State, oneLine(r.Message))
		}
	})

	describeWorkspaces(d, st)
}

// describeWorkspaces writes the virtual-workspace URLs the syncer follows (one per shard)
// and the workspaces bound to the target, each with the sync health its syncer reported:
// Ready, the reason it is not (Forbidden, Unauthorized, Unreachable, Syncing), or Unknown
// when the syncer reported nothing for it.
func describeWorkspaces(d *describer, st *workloadv1alpha1.SyncTarget) {
	d.section("Virtual workspaces", len(st.Status.VirtualWorkspaces), func(w *strings.Builder) {
		for _, vw := range st.Status.VirtualWorkspaces {
			fmt.Fprintf(w, "  %s\n", vw.SyncerURL)
		}
	})

	health := map[string]workloadv1alpha1.WorkspaceHealth{}
	for _, h := range st.Status.WorkspaceHealth {
		health[h.Path] = h
	}
	d.section("Workspaces", len(st.Status.Workspaces), func(w *strings.Builder) {
		fmt.Fprintln(w, "  WORKSPACE\tSYNC\tMESSAGE")
		for _, ws := range st.Status.Workspaces {
			h, reported := health[ws.Path]
			switch {
			case !reported:
				fmt.Fprintf(w, "  %s\t%s\t%s\n", ws.Path, metav1.ConditionUnknown, "not reported by the syncer yet")
			case h.Ready:
				fmt.Fprintf(w, "  %s\t%s\t\n", ws.Path, "Ready")
			default:
				fmt.Fprintf(w, "  %s\t%s\t%s\n", ws.Path, orValue(h.Reason, "NotReady"), oneLine(h.Message))
			}
		}
	})
}

// describeQuantities writes the capacity and the allocatable resources.
func describeQuantities(d *describer, st *workloadv1alpha1.SyncTarget) {
	for _, rl := range []struct {
		title string
		list  *corev1.ResourceList
	}{{"Capacity", st.Status.Capacity}, {"Allocatable", st.Status.Allocatable}} {
		n := 0
		if rl.list != nil {
			n = len(*rl.list)
		}
		d.section(rl.title, n, func(w *strings.Builder) {
			names := make([]string, 0, n)
			for name := range *rl.list {
				names = append(names, string(name))
			}
			sort.Strings(names)
			for _, name := range names {
				q := (*rl.list)[corev1.ResourceName(name)]
				fmt.Fprintf(w, "  %s:\t%s\n", name, q.String())
			}
		})
	}

}

// describeSyncerAndErrors writes the syncer's identity and its error summary.
func describeSyncerAndErrors(d *describer, st *workloadv1alpha1.SyncTarget, now time.Time) {
	syncer := st.Status.Syncer
	d.section("Syncer", boolCount(syncer != nil), func(w *strings.Builder) {
		fmt.Fprintf(w, "  Version:\t%s\n", orNone(syncer.Version))
		fmt.Fprintf(w, "  Pod:\t%s\n", orNone(syncer.Pod))
		started := "<unknown>"
		if syncer.StartTime != nil {
			started = timeAndAge(syncer.StartTime.Time, now)
		}
		fmt.Fprintf(w, "  Started:\t%s\n", started)
	})

	var counts map[string]int64
	var recent []workloadv1alpha1.SyncerError
	if st.Status.Errors != nil {
		counts, recent = st.Status.Errors.Counts, st.Status.Errors.Recent
	}
	d.section("Error counts", len(counts), func(w *strings.Builder) {
		fmt.Fprintln(w, "  TYPE\tCOUNT")
		types := make([]string, 0, len(counts))
		for t := range counts {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			fmt.Fprintf(w, "  %s\t%d\n", t, counts[t])
		}
	})
	d.section("Recent errors", len(recent), func(w *strings.Builder) {
		fmt.Fprintln(w, "  AGE\tTYPE\tWORKSPACE\tRESOURCE\tMESSAGE")
		for _, e := range recent {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", age(e.Time.Time, now), e.Type, orNone(e.Workspace), orNone(e.Resource), oneLine(e.Message))
		}
	})
}

// describer writes sections and remembers the first write error.
type describer struct {
	out io.Writer
	err error
}

// section prints "Title:" and the body, or "Title: <none>" when n is 0. Each section has its
// own tab writer so that columns align within it.
func (d *describer) section(title string, n int, body func(w *strings.Builder)) {
	if d.err != nil {
		return
	}
	if n == 0 {
		_, d.err = fmt.Fprintf(d.out, "%s:  <none>\n", title)
		return
	}
	if _, d.err = fmt.Fprintf(d.out, "%s:\n", title); d.err != nil {
		return
	}
	d.err = tabulate(d.out, body)
}

// timeAndAge prints an absolute time and how long ago it was (or how far ahead it is).
func timeAndAge(t, now time.Time) string {
	if t.After(now) {
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), age(now, t))
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), age(t, now))
}

// joinMap prints a map as sorted "k<sep>v" pairs separated by commas, or "<none>".
func joinMap(m map[string]string, sep string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+sep+m[k])
	}
	return strings.Join(parts, ",")
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// orValue is s, or value when s is empty.
func orValue(s, value string) string {
	if s == "" {
		return value
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}
