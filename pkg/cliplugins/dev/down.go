package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// serveGrace is how long `down` waits for dev serve to stop its processes after SIGTERM.
const serveGrace = 60 * time.Second

type downOptions struct {
	genericiooptions.IOStreams
	dir      string
	keepData bool
}

func newDownCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &downOptions{IOStreams: streams, dir: defaultDir}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local environment and check that nothing is left running",
		Long: `Stop the local environment: dev serve stops every process (etcd last); whatever is still
running afterwards is killed and reported. The environment's data (etcd, logs, kubeconfigs) is
removed unless --keep-data; the built binaries stay. Running it again is harmless.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			dir, err := absDir(o.dir)
			if err != nil {
				return err
			}
			return stopEnvironment(dir, o.keepData, o.Out, false)
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", o.dir, "Directory of the environment.")
	cmd.Flags().BoolVar(&o.keepData, "keep-data", false, "Keep the data and logs in <dir>/env.")
	return cmd
}

// stopEnvironment stops the environment in dir and verifies that none of its processes is
// left; quiet leaves out the "nothing running" message.
func stopEnvironment(dir string, keepData bool, out io.Writer, quiet bool) error {
	st, err := readState(dir)
	if err != nil {
		// A damaged state file must not keep anything running: carry on with the scan.
		_, _ = fmt.Fprintf(out, "Warning: %v\n", err)
	}
	stopped := false
	if st != nil && alive(st.PID, dir) {
		stopped = true
		_, _ = fmt.Fprintf(out, "Stopping dev serve (pid %d) and its processes ...\n", st.PID)
		terminate(st.PID)
		if !waitGone(serveGrace, dir, st.PID) {
			_, _ = fmt.Fprintf(out, "dev serve did not stop within %s; killing its process group\n", serveGrace)
			killGroup(st.PID)
			if !waitGone(10*time.Second, dir, st.PID) {
				return fmt.Errorf("dev serve (pid %d) is still running after SIGKILL", st.PID)
			}
		}
	}

	// Whatever serve did not stop: the processes it listed, then any server still naming
	// this directory (started before the list was written, say).
	leftovers := map[int]string{}
	if st != nil {
		for _, p := range st.Processes {
			if alive(p.PID, dir) {
				leftovers[p.PID] = p.Name
			}
		}
	}
	for pid, cmdline := range leftoverProcesses(dir) {
		if _, ok := leftovers[pid]; !ok {
			leftovers[pid] = cmdline
		}
	}
	pids := make([]int, 0, len(leftovers))
	for pid := range leftovers {
		pids = append(pids, pid)
		killGroup(pid)
	}
	sort.Ints(pids)
	for _, pid := range pids {
		_, _ = fmt.Fprintf(out, "Killed leftover process %d: %s\n", pid, leftovers[pid])
	}
	if len(pids) > 0 && !waitGone(10*time.Second, dir, pids...) {
		var still []string
		for _, pid := range pids {
			if alive(pid, dir) {
				still = append(still, fmt.Sprintf("%d (%s)", pid, leftovers[pid]))
			}
		}
		return fmt.Errorf("processes still running after SIGKILL: %s", strings.Join(still, ", "))
	}

	var errs []error
	if !keepData {
		for _, sub := range []string{"env", "kubeconfigs"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				errs = append(errs, fmt.Errorf("failed to remove %s: %w", filepath.Join(dir, sub), err))
			}
		}
	}
	if err := removeState(dir); err != nil {
		errs = append(errs, err)
	}
	switch {
	case stopped || len(pids) > 0:
		_, _ = fmt.Fprintf(out, "Stopped the environment in %s; nothing of it is left running.\n", dir)
	case !quiet:
		_, _ = fmt.Fprintf(out, "Nothing running in %s.\n", dir)
	}
	return errors.Join(errs...)
}

// waitGone waits until none of pids is a live process of dir, or timeout passes.
func waitGone(timeout time.Duration, dir string, pids ...int) bool {
	err := localenv.Poll(context.Background(), 200*time.Millisecond, timeout, func(context.Context) (bool, string, error) {
		for _, pid := range pids {
			if alive(pid, dir) {
				return false, fmt.Sprintf("pid %d is running", pid), nil
			}
		}
		return true, "", nil
	})
	return err == nil
}
