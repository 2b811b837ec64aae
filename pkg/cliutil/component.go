package cliutil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// Component is one long-running TMC process (workload-syncer, tmc-controller) as
// RunComponent starts it.
type Component struct {
	// Name names the component in logs, e.g. "tmc-controller".
	Name string

	// MetricsBindAddress is host:port serving Metrics at /metrics; "" or "0" disables it.
	MetricsBindAddress string
	Metrics            http.Handler
	// HealthBindAddress is host:port serving Health as it is (it routes /healthz, /livez,
	// /readyz itself); "" or "0" disables it.
	HealthBindAddress string
	Health            http.Handler

	// Prepare, when set, runs once the servers are up and before leader election, on every
	// replica: work that does not need the lease, such as waiting for the SyncTarget.
	Prepare func(ctx context.Context) error
	// Run runs the controllers until ctx ends. With leader election it runs only while this
	// replica leads, and ctx ends when the lease is lost. Required.
	Run func(ctx context.Context) error

	// LeaderElection, when set, makes replicas elect a leader before Run; nil runs at once.
	LeaderElection *LeaderElection
}

// LeaderElection is how a Component elects a leader: a coordination.k8s.io Lease.
type LeaderElection struct {
	// Client reaches the cluster holding the Lease.
	Client kubernetes.Interface
	// Namespace and Name of the Lease.
	Namespace string
	Name      string
	// Identity is this replica's holder identity; it must be unique per process.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod follow client-go's leaderelection
	// (LeaseDuration > RenewDeadline > 1.2 * RetryPeriod > 0); LeaderElectionFlags
	// validates them.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// ErrLostLeadership is wrapped by the error RunComponent returns when the lease is lost
// while leading: the process must exit non-zero, so that it restarts as a candidate.
var ErrLostLeadership = errors.New("lost leadership")

// RunComponent runs c until ctx ends or c fails:
//
//  1. it serves Metrics and Health at once (a listen error is returned);
//  2. it runs Prepare (its error is returned);
//  3. it runs Run, with LeaderElection only after acquiring the Lease, and returns once Run
//     has returned. The Lease is released when ctx ends or Run returns.
//
// It returns nil when ctx ends, also if Prepare or Run then return an error caused by ctx
// (wrapping context.Canceled or context.DeadlineExceeded); Run's own errors, and an error
// wrapping ErrLostLeadership when the Lease is lost while ctx has not ended.
func RunComponent(ctx context.Context, c Component) error {
	if c.Run == nil {
		return fmt.Errorf("failed to start %s: no Run function", c.Name)
	}
	logger := klog.FromContext(ctx)
	logger.Info("Starting " + c.Name)

	var servers Servers
	defer func() { servers.Shutdown() }() // the servers started below, not the empty list

	if c.Metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", c.Metrics)
		if err := servers.Serve(ctx, c.MetricsBindAddress, mux, "metrics"); err != nil {
			return err
		}
	}
	if c.Health != nil {
		if err := servers.Serve(ctx, c.HealthBindAddress, c.Health, "health probes"); err != nil {
			return err
		}
	}

	if c.Prepare != nil {
		if err := c.Prepare(ctx); err != nil {
			return stopped(ctx, err)
		}
	}
	if c.LeaderElection == nil {
		return stopped(ctx, c.Run(ctx))
	}
	return runLeading(ctx, c.Name, *c.LeaderElection, c.Run)
}

// stopped returns nil for an error caused by the end of ctx, and err otherwise.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && isContextError(err) {
		return nil
	}
	return err
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
