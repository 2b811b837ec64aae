package dev

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printSummary prints what `up` leaves the user with: kubeconfigs, what runs, where the
// sample app went and what to try next.
func printSummary(w io.Writer, st *state) {
	_, _ = fmt.Fprintf(w, "TMC local environment ready in %s (set up in %.0fs)\n\n", st.Dir, st.ReadyAfterSeconds)
	printKubeconfigs(w, st)
	_, _ = fmt.Fprintf(w, "\nRunning (logs in %s):\n", st.LogDir)
	rows := make([][]string, 0, len(st.Processes))
	for _, p := range st.Processes {
		rows = append(rows, []string{p.Name, fmt.Sprintf("pid %d", p.PID), p.URL})
	}
	printTable(w, rows)
	if d := st.Demo; d != nil {
		_, _ = fmt.Fprintf(w, "\nSample app: Deployment %s (%d replicas), Service %s and ConfigMap %s-config in namespace %s\n",
			d.Deployment, demoReplicas, d.Deployment, d.Deployment, d.Namespace)
		_, _ = fmt.Fprintf(w, "of workspace %s, placed by Placement %q on SyncTarget %s (downstream namespace %s).\n",
			st.WorkloadWorkspace, placementName, d.SyncTarget, d.DownstreamNamespace)
	}
	_, _ = fmt.Fprintln(w, "\nNext:")
	workload, location := kubeconfigPath(st, "workload"), kubeconfigPath(st, "location")
	_, _ = fmt.Fprintf(w, "  KUBECONFIG=%s kubectl get deploy,svc,cm -n %s\n", workload, demoNamespace)
	if d := st.Demo; d != nil && d.SyncTarget != "" {
		_, _ = fmt.Fprintf(w, "  KUBECONFIG=%s kubectl get deploy,pods -n %s\n", kubeconfigPath(st, d.SyncTarget), d.DownstreamNamespace)
	}
	if d := st.Demo; d != nil && st.VirtualWorkspaceURL != "" {
		_, _ = fmt.Fprintf(w, "  KUBECONFIG=%s kubectl tmc logs deploy/%s -n %s --virtual-workspace-url=%s\n", workload, d.Deployment, demoNamespace, st.VirtualWorkspaceURL)
	}
	_, _ = fmt.Fprintf(w, "  KUBECONFIG=%s kubectl get synctargets,locations\n", location)
	_, _ = fmt.Fprintf(w, "  KUBECONFIG=%s kubectl tmc workload status\n", location)
	_, _ = fmt.Fprintf(w, "  kubectl tmc dev status%s\n", dirFlag(st.Dir))
	_, _ = fmt.Fprintf(w, "  kubectl tmc dev down%s\n", dirFlag(st.Dir))
}

func printKubeconfigs(w io.Writer, st *state) {
	_, _ = fmt.Fprintln(w, "Kubeconfigs (admin):")
	rows := make([][]string, 0, len(st.Kubeconfigs))
	for _, k := range st.Kubeconfigs {
		rows = append(rows, []string{k.Description, "KUBECONFIG=" + k.Path})
	}
	printTable(w, rows)
}

// printTable prints rows as aligned columns indented by two spaces, without trailing blanks.
func printTable(w io.Writer, rows [][]string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, row := range rows {
		_, _ = fmt.Fprintln(tw, "  "+strings.Join(row, "\t"))
	}
	_ = tw.Flush()
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line != "" {
			_, _ = fmt.Fprintln(w, strings.TrimRight(line, " \n"))
		}
	}
}

func kubeconfigPath(st *state, name string) string {
	for _, k := range st.Kubeconfigs {
		if k.Name == name {
			return k.Path
		}
	}
	return "<" + name + " kubeconfig>"
}
