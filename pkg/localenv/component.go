package localenv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
)

// defaultReadyTimeout bounds the wait for a component's /readyz unless its options say
// otherwise.
const defaultReadyTimeout = 90 * time.Second

// Component is a TMC binary (workload-syncer or tmc-controller) running as a process of the
// environment, serving /metrics and /healthz, /livez, /readyz on free loopback ports.
type Component struct {
	*Process
	// MetricsURL is the /metrics URL; HealthURL the base URL of the health endpoints.
	MetricsURL string
	HealthURL  string
	// PprofURL is the /debug/pprof URL when profiling was asked for, else "".
	PprofURL string
}

// componentSpec is what StartSyncer and StartController hand to startComponent.
type componentSpec struct {
	name, binary string
	// kubeconfigs are written into the component's directory and passed as
	// --<flag>=<path>, in this order.
	kubeconfigs []kubeconfigFlag
	args        []string
	pprof       bool
	timeout     time.Duration
}

type kubeconfigFlag struct {
	flag string
	cfg  *rest.Config
}

// startComponent writes the kubeconfigs, picks the ports, starts the binary, tracks it with
// the environment and waits until it is ready.
func (env *Environment) startComponent(ctx context.Context, spec componentSpec) (*Component, error) {
	if spec.binary == "" {
		return nil, fmt.Errorf("%s: no binary given", spec.name)
	}
	dir := filepath.Join(env.Dir, spec.name)
	var args []string
	for _, kc := range spec.kubeconfigs {
		path, err := WriteKubeconfig(kc.cfg, kc.flag, filepath.Join(dir, kc.flag+".kubeconfig"))
		if err != nil {
			return nil, err
		}
		args = append(args, fmt.Sprintf("--%s=%s", kc.flag, path))
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	c := &Component{
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]),
		HealthURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
	args = append(args,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[1]))
	if spec.pprof {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", port))
		c.PprofURL = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", port)
	}
	c.Process = NewProcess(spec.name, spec.binary, append(args, spec.args...), env.LogDir)
	if err := c.Start(); err != nil {
		return nil, err
	}
	env.Track(c.Process)
	timeout := spec.timeout
	if timeout == 0 {
		timeout = defaultReadyTimeout
	}
	if _, err := c.WaitReady(ctx, timeout); err != nil {
		return nil, err
	}
	return c, nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}

// WaitReady polls /readyz every 50ms until it answers 200 and returns when it did. It fails
// at once if the process exits.
func (c *Component) WaitReady(ctx context.Context, timeout time.Duration) (time.Time, error) {
	var readyAt time.Time
	err := Poll(ctx, 50*time.Millisecond, timeout, func(ctx context.Context) (bool, string, error) {
		if !c.Running() {
			exitErr := c.ExitError()
			if exitErr == nil {
				exitErr = errors.New("exit status 0")
			}
			return false, "", fmt.Errorf("%s exited (log: %s; it ended with:\n%s): %w", c.Name, c.LogPath, tailFile(c.LogPath, 5), exitErr)
		}
		code, body, err := HTTPGet(ctx, c.HealthURL+"/readyz")
		if err != nil {
			return false, err.Error(), nil
		}
		readyAt = time.Now()
		return code == 200, fmt.Sprintf("/readyz %d %s", code, body), nil
	})
	if err != nil {
		_, verbose, _ := HTTPGet(context.Background(), c.HealthURL+"/readyz?verbose")
		return time.Time{}, fmt.Errorf("%s did not become ready within %s (log: %s): %w\n%s", c.Name, timeout, c.LogPath, err, verbose)
	}
	return readyAt, nil
}

// RestartAndWait stops the component (SIGTERM, SIGKILL after grace), starts it again with
// the same arguments and ports, and waits until it is ready.
func (c *Component) RestartAndWait(ctx context.Context, grace, timeout time.Duration) error {
	if err := c.Restart(grace); err != nil {
		return err
	}
	if timeout == 0 {
		timeout = defaultReadyTimeout
	}
	_, err := c.WaitReady(ctx, timeout)
	return err
}

// Metrics scrapes the component's /metrics.
func (c *Component) Metrics(ctx context.Context) (Metrics, error) {
	return ScrapeMetrics(ctx, c.MetricsURL)
}

// verbosityArg is the klog -v flag.
func verbosityArg(v int) string { return "-v=" + strconv.Itoa(v) }

// durationArg appends --flag=d when d is set; zero leaves the binary's default.
func durationArg(args []string, flag string, d time.Duration) []string {
	if d == 0 {
		return args
	}
	return append(args, fmt.Sprintf("--%s=%s", flag, d))
}

// qpsArg appends --qps when set; zero leaves the binary's default, negative disables
// client-side rate limiting.
func qpsArg(args []string, qps float32) []string {
	if qps == 0 {
		return args
	}
	return append(args, "--qps="+strconv.FormatFloat(float64(qps), 'g', -1, 32))
}
