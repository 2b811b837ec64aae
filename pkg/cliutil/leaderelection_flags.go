package cliutil

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
)

// Defaults of the leader-election durations: client-go's and kube-controller-manager's.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// LeaderElectionFlags are the leader-election flags every TMC binary has, under the same
// names. Embed them in a binary's options, bind them with AddFlags, check them with
// Validate, and turn them into a Component's election with Election.
type LeaderElectionFlags struct {
	// LeaderElect (--leader-elect) turns leader election on.
	LeaderElect bool
	// LeaderElectionNamespace (--leader-election-namespace) holds the Lease and
	// LeaderElectionID (--leader-election-id) names it. Their defaults, and their checks,
	// are the binary's: the syncer, for one, derives them from its pod and SyncTarget.
	LeaderElectionNamespace string
	LeaderElectionID        string
	// LeaseDuration (--leader-elect-lease-duration) is how long candidates wait after the
	// last renewal before taking over; RenewDeadline (--leader-elect-renew-deadline) how
	// long the leader keeps trying to renew before giving up; RetryPeriod
	// (--leader-elect-retry-period) the wait between attempts.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// NewLeaderElectionFlags returns the flags with their defaults: election off, the given
// Lease namespace and name, and the default durations.
func NewLeaderElectionFlags(namespace, id string) LeaderElectionFlags {
	return LeaderElectionFlags{
		LeaderElectionNamespace: namespace,
		LeaderElectionID:        id,
		LeaseDuration:           DefaultLeaseDuration,
		RenewDeadline:           DefaultRenewDeadline,
		RetryPeriod:             DefaultRetryPeriod,
	}
}

// LeaderElectionUsage words the flags' help for one binary.
type LeaderElectionUsage struct {
	// Lease says where the Lease lives, completing "Elect a leader through a Lease ...",
	// e.g. "in the physical cluster".
	Lease string
	// Namespace and ID, when set, are appended to the help of --leader-election-namespace
	// and --leader-election-id, e.g. to say how an empty value is defaulted.
	Namespace string
	ID        string
}

// AddFlags binds the flags to fs.
func (f *LeaderElectionFlags) AddFlags(fs *pflag.FlagSet, usage LeaderElectionUsage) {
	fs.BoolVar(&f.LeaderElect, "leader-elect", f.LeaderElect,
		"Elect a leader through a Lease "+usage.Lease+", so that several replicas can run.")
	fs.StringVar(&f.LeaderElectionNamespace, "leader-election-namespace", f.LeaderElectionNamespace,
		appendUsage("Namespace of the leader-election Lease.", usage.Namespace))
	fs.StringVar(&f.LeaderElectionID, "leader-election-id", f.LeaderElectionID,
		appendUsage("Name of the leader-election Lease.", usage.ID))
	fs.DurationVar(&f.LeaseDuration, "leader-elect-lease-duration", f.LeaseDuration,
		"How long non-leaders wait after the last observed renewal before trying to take over the lease.")
	fs.DurationVar(&f.RenewDeadline, "leader-elect-renew-deadline", f.RenewDeadline,
		"How long the leader keeps retrying to renew the lease before giving up leadership.")
	fs.DurationVar(&f.RetryPeriod, "leader-elect-retry-period", f.RetryPeriod,
		"How long candidates wait between attempts to acquire or renew the lease.")
}

func appendUsage(usage, more string) string {
	if more == "" {
		return usage
	}
	return usage + " " + more
}

// Validate reports, when --leader-elect is set, every duration breaking client-go's rules
// (all positive, renew deadline above 1.2 retry periods, lease duration above the renew
// deadline), one error each naming its flags. The namespace and ID are left to the
// binary, which defaults them.
func (f *LeaderElectionFlags) Validate() []error {
	if !f.LeaderElect {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, d := range []struct {
		flag  string
		value time.Duration
	}{
		{"--leader-elect-lease-duration", f.LeaseDuration},
		{"--leader-elect-renew-deadline", f.RenewDeadline},
		{"--leader-elect-retry-period", f.RetryPeriod},
	} {
		if d.value <= 0 {
			add("%s must be positive, got %s", d.flag, d.value)
		}
	}
	if f.RetryPeriod > 0 && f.RenewDeadline > 0 &&
		f.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(f.RetryPeriod)) {
		add("--leader-elect-renew-deadline (%s) must be greater than %.1f * --leader-elect-retry-period (%s)",
			f.RenewDeadline, leaderelection.JitterFactor, f.RetryPeriod)
	}
	if f.RenewDeadline > 0 && f.LeaseDuration > 0 && f.LeaseDuration <= f.RenewDeadline {
		add("--leader-elect-lease-duration (%s) must be greater than --leader-elect-renew-deadline (%s)",
			f.LeaseDuration, f.RenewDeadline)
	}
	return errs
}

// Election returns a Component's election with these durations, through the Lease
// namespace/name in client's cluster held by identity; nil when --leader-elect is not set.
func (f *LeaderElectionFlags) Election(client kubernetes.Interface, namespace, name, identity string) *LeaderElection {
	if !f.LeaderElect {
		return nil
	}
	return &LeaderElection{
		Client:        client,
		Namespace:     namespace,
		Name:          name,
		Identity:      identity,
		LeaseDuration: f.LeaseDuration,
		RenewDeadline: f.RenewDeadline,
		RetryPeriod:   f.RetryPeriod,
	}
}
