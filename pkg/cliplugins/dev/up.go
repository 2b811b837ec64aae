package dev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

type upOptions struct {
	genericiooptions.IOStreams
	dir      string
	clusters int
	timeout  time.Duration
	// servePath is the command path of `dev serve` below the root command.
	servePath []string
}

func newUpCommand(streams genericiooptions.IOStreams, serve *cobra.Command) *cobra.Command {
	o := &upOptions{IOStreams: streams, dir: defaultDir, clusters: 2, timeout: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local environment in the background and wait until the sample app is ready",
		Long: `Start the local environment in the background and wait until the sample app is ready, then
print the kubeconfigs and what to try next. Builds missing binaries first. If the environment
is already up, prints the same information.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkPlatform(); err != nil {
				return err
			}
			if err := o.complete(serve); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", o.dir, "Directory for the environment's binaries, data, logs, kubeconfigs and state.")
	cmd.Flags().IntVar(&o.clusters, "clusters", o.clusters, "Number of kwok physical clusters (1 or 2).")
	cmd.Flags().DurationVar(&o.timeout, "timeout", o.timeout, "How long to wait for the environment to be ready, builds excluded.")
	return cmd
}

func (o *upOptions) complete(serve *cobra.Command) error {
	if err := validateClusters(o.clusters); err != nil {
		return err
	}
	if err := validateTimeout(o.timeout); err != nil {
		return err
	}
	dir, err := absDir(o.dir)
	if err != nil {
		return err
	}
	o.dir = dir
	// "kubectl-tmc dev serve" -> ["dev", "serve"], wherever the root mounts this command.
	o.servePath = nil
	for c := serve; c.HasParent(); c = c.Parent() {
		o.servePath = append([]string{c.Name()}, o.servePath...)
	}
	return nil
}

func (o *upOptions) run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(filepath.Join(o.dir, "logs"), 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", o.dir, err)
	}
	st, err := readState(o.dir)
	if err != nil {
		return err
	}
	if st != nil && alive(st.PID, o.dir) {
		switch st.Phase {
		case phaseReady:
			_, _ = fmt.Fprintf(o.Out, "The environment in %s is already up (dev serve pid %d).\n\n", o.dir, st.PID)
			printSummary(o.Out, st)
			return nil
		case phaseStarting:
			_, _ = fmt.Fprintf(o.Out, "The environment in %s is starting (dev serve pid %d); waiting for it.\n", o.dir, st.PID)
			return o.waitAndReport(ctx, st.PID, nil)
		default:
			return fmt.Errorf("the environment in %s is %s (dev serve pid %d); run 'kubectl tmc dev down%s' first", o.dir, st.Phase, st.PID, dirFlag(o.dir))
		}
	}
	if st != nil || len(leftoverProcesses(o.dir)) > 0 {
		// A previous environment died without 'dev down': make sure nothing of it runs.
		if err := stopEnvironment(o.dir, true, o.Out, true); err != nil {
			return err
		}
	}

	binDir := filepath.Join(o.dir, "bin")
	serverDir, err := ensureBinaries(ctx, binDir, o.Out, o.ErrOut)
	if err != nil {
		return err
	}
	pid, exited, err := o.startServe(binDir, serverDir)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.Out, "Started dev serve (pid %d, log %s); setting up (timeout %s)\n", pid, o.serveLog(), o.timeout)
	return o.waitAndReport(ctx, pid, exited)
}

// serveLogMarker starts the lines up writes into serve's log before each start.
const serveLogMarker = "====="

func (o *upOptions) serveLog() string { return filepath.Join(o.dir, "logs", "dev-serve.log") }

// startServe starts `dev serve` detached: its own session (so it outlives this command and
// the terminal's signals), output to the log, no stdin.
func (o *upOptions) startServe(binDir, serverDir string) (int, <-chan struct{}, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, fmt.Errorf("failed to find this program to start dev serve: %w", err)
	}
	log, err := os.OpenFile(o.serveLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("failed to open %s: %w", o.serveLog(), err)
	}
	defer func() { _ = log.Close() }()
	args := append(append([]string(nil), o.servePath...),
		"--dir", o.dir,
		"--clusters", strconv.Itoa(o.clusters),
		"--bin-dir", binDir,
		// serve gives up on its own if this command is gone and nobody stops it.
		"--setup-timeout", (o.timeout + time.Minute).String())
	_, _ = fmt.Fprintf(log, "\n%s %s: %s %s\n", serveLogMarker, time.Now().Format(time.RFC3339), exe, strings.Join(args, " "))
	cmd := exec.Command(exe, args...)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), "TMC_BIN_DIR="+serverDir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = detachedSysProcAttr()
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("failed to start dev serve: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return cmd.Process.Pid, exited, nil
}

// waitAndReport follows state.json until serve (pid) is Ready, printing each set-up step,
// then prints the summary. On failure, timeout or interrupt it prints why and the end of
// serve's log and stops everything, keeping the logs.
func (o *upOptions) waitAndReport(ctx context.Context, pid int, exited <-chan struct{}) error {
	began := time.Now()
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	lastMessage := ""
	for {
		var failure error
		select {
		case <-ctx.Done():
			failure = errors.New("interrupted")
		case <-deadline.C:
			failure = fmt.Errorf("the environment was not ready after %s", o.timeout)
		case <-exited:
			exited = nil
			failure = errors.New("dev serve exited")
		case <-tick.C:
		}
		st, err := readState(o.dir)
		if err == nil && st != nil && st.PID == pid {
			if st.Message != "" && st.Message != lastMessage {
				lastMessage = st.Message
				_, _ = fmt.Fprintf(o.Out, "[%4.0fs] %s\n", time.Since(began).Seconds(), st.Message)
			}
			switch st.Phase {
			case phaseReady:
				_, _ = fmt.Fprintln(o.Out)
				printSummary(o.Out, st)
				return nil
			case phaseFailed:
				failure = fmt.Errorf("set-up failed: %s", st.Error)
			}
		}
		if failure == nil && exited == nil && !alive(pid, o.dir) {
			failure = errors.New("dev serve is no longer running")
		}
		if failure != nil {
			return o.fail(failure)
		}
	}
}

func (o *upOptions) fail(failure error) error {
	_, _ = fmt.Fprintf(o.ErrOut, "%v\n----- last lines of %s -----\n%s\n-----\n", failure, o.serveLog(), lastRun(o.serveLog(), 30))
	_, _ = fmt.Fprintln(o.ErrOut, "Stopping what was started; the logs of every process stay in "+filepath.Join(o.dir, "env", "logs"))
	if err := stopEnvironment(o.dir, true, o.ErrOut, false); err != nil {
		return errors.Join(failure, err)
	}
	return failure
}

// lastRun returns at most the last n lines that the latest dev serve wrote to its log (each
// start begins with a "=====" line), or why the log cannot be read.
func lastRun(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	text := string(b)
	if i := strings.LastIndex(text, serveLogMarker); i >= 0 {
		text = text[i:]
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
