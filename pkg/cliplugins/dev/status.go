package dev

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// statusTimeout bounds the one request `status` makes to the environment.
const statusTimeout = 5 * time.Second

type statusOptions struct {
	genericiooptions.IOStreams
	dir string
	// Injected for tests.
	now          func() time.Time
	alive        func(pid int, dir string) bool
	readReplicas func(ctx context.Context, kubeconfig, namespace, name string) (ready, desired int32, err error)
}

func newStatusCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &statusOptions{IOStreams: streams, dir: defaultDir, now: time.Now, alive: alive, readReplicas: readReplicas}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the local environment: phase, processes, kubeconfigs and the sample app",
		Long: `Show the local environment: its phase, uptime, whether each process is alive, the
kubeconfigs, and the sample Deployment's ready replicas as the workload workspace reports them.
Fails if the environment is up but a process of it is not running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := absDir(o.dir)
			if err != nil {
				return err
			}
			o.dir = dir
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return o.run(ctx)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", o.dir, "Directory of the environment.")
	return cmd
}

func (o *statusOptions) run(ctx context.Context) error {
	st, err := readState(o.dir)
	if err != nil {
		return err
	}
	if st == nil {
		_, _ = fmt.Fprintf(o.Out, "No environment in %s; start one with 'kubectl tmc dev up%s'.\n", o.dir, dirFlag(o.dir))
		return nil
	}
	w := o.Out
	serveAlive := o.alive(st.PID, o.dir)
	phase := string(st.Phase)
	if !serveAlive && st.Phase != phaseStopped {
		phase += " (dev serve is not running)"
	}
	_, _ = fmt.Fprintf(w, "Environment: %s\n", o.dir)
	_, _ = fmt.Fprintf(w, "Phase:       %s\n", phase)
	if st.Error != "" {
		_, _ = fmt.Fprintf(w, "Error:       %s\n", st.Error)
	}
	if st.Message != "" {
		_, _ = fmt.Fprintf(w, "Step:        %s\n", st.Message)
	}
	setUp := ""
	if st.ReadyAfterSeconds > 0 {
		setUp = fmt.Sprintf(" (set up in %.0fs)", st.ReadyAfterSeconds)
	}
	_, _ = fmt.Fprintf(w, "Uptime:      %s%s\n", duration.HumanDuration(o.now().Sub(st.StartedAt)), setUp)

	_, _ = fmt.Fprintln(w, "\nProcesses:")
	rows := [][]string{{"NAME", "PID", "STATE", "URL"}}
	dead := 0
	for _, p := range st.Processes {
		state := "running"
		if !o.alive(p.PID, o.dir) {
			state, dead = "NOT RUNNING", dead+1
		}
		rows = append(rows, []string{p.Name, strconv.Itoa(p.PID), state, p.URL})
	}
	printTable(w, rows)
	_, _ = fmt.Fprintln(w)
	printKubeconfigs(w, st)

	if d := st.Demo; d != nil && st.Phase == phaseReady {
		app := fmt.Sprintf("Deployment %s/%s in %s", d.Namespace, d.Deployment, st.WorkloadWorkspace)
		rctx, cancel := context.WithTimeout(ctx, statusTimeout)
		ready, desired, err := o.readReplicas(rctx, kubeconfigPath(st, "workload"), d.Namespace, d.Deployment)
		cancel()
		if err != nil {
			_, _ = fmt.Fprintf(w, "\nSample app:  %s: cannot read it: %v\n", app, err)
		} else {
			_, _ = fmt.Fprintf(w, "\nSample app:  %s: %d/%d ready upstream, placed on %s (downstream namespace %s)\n", app, ready, desired, d.SyncTarget, d.DownstreamNamespace)
		}
	}
	switch {
	case st.Phase == phaseStopped || st.Phase == phaseFailed:
	case !serveAlive:
		return fmt.Errorf("dev serve is not running (killed or crashed), so neither is the environment; 'kubectl tmc dev down%s' cleans up, the logs are in %s", dirFlag(o.dir), st.LogDir)
	case dead > 0:
		return fmt.Errorf("the environment is degraded: %d of %d processes are not running; see the logs in %s", dead, len(st.Processes), st.LogDir)
	}
	return nil
}

// readReplicas reads a Deployment's ready and desired replicas through a kubeconfig.
func readReplicas(ctx context.Context, kubeconfig, namespace, name string) (int32, int32, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to load %s: %w", kubeconfig, err)
	}
	cfg.Timeout = statusTimeout
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to create client: %w", err)
	}
	d, err := c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, 0, err
	}
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	return d.Status.ReadyReplicas, desired, nil
}
