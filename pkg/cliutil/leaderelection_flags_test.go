package cliutil

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes/fake"
)

func parseLeaderElectionFlags(t *testing.T, args ...string) *LeaderElectionFlags {
	t.Helper()
	f := NewLeaderElectionFlags("kube-system", "tmc-controller")
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.AddFlags(fs, LeaderElectionUsage{Lease: "in the test cluster"})
	if err := fs.Parse(args); err != nil {
		t.Fatalf("failed to parse %q: %v", args, err)
	}
	return &f
}

func TestLeaderElectionFlags(t *testing.T) {
	if got, want := *parseLeaderElectionFlags(t), (LeaderElectionFlags{
		LeaderElectionNamespace: "kube-system", LeaderElectionID: "tmc-controller",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
	}); got != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	got := *parseLeaderElectionFlags(t, "--leader-elect", "--leader-election-namespace=tmc", "--leader-election-id=lease",
		"--leader-elect-lease-duration=30s", "--leader-elect-renew-deadline=20s", "--leader-elect-retry-period=3s")
	want := LeaderElectionFlags{
		LeaderElect: true, LeaderElectionNamespace: "tmc", LeaderElectionID: "lease",
		LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 3 * time.Second,
	}
	if got != want {
		t.Errorf("parsed:\n got %+v\nwant %+v", got, want)
	}
}

func TestLeaderElectionFlagsValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// want are substrings, one per expected problem; none means valid.
		want []string
	}{
		{name: "defaults", args: []string{"--leader-elect"}},
		{name: "durations not checked without --leader-elect", args: []string{"--leader-elect-retry-period=0"}},
		{name: "custom", args: []string{"--leader-elect", "--leader-elect-lease-duration=1m", "--leader-elect-renew-deadline=40s", "--leader-elect-retry-period=5s"}},
		{
			name: "lease duration equal to renew deadline",
			args: []string{"--leader-elect", "--leader-elect-lease-duration=10s"},
			want: []string{"--leader-elect-lease-duration (10s) must be greater than --leader-elect-renew-deadline (10s)"},
		},
		{
			name: "renew deadline within the jittered retry period",
			args: []string{"--leader-elect", "--leader-elect-retry-period=9s"},
			want: []string{"--leader-elect-renew-deadline (10s) must be greater than 1.2 * --leader-elect-retry-period (9s)"},
		},
		{
			name: "retry period zero",
			args: []string{"--leader-elect", "--leader-elect-retry-period=0"},
			want: []string{"--leader-elect-retry-period must be positive, got 0s"},
		},
		{
			name: "renew deadline zero",
			args: []string{"--leader-elect", "--leader-elect-renew-deadline=0"},
			want: []string{"--leader-elect-renew-deadline must be positive, got 0s"},
		},
		{
			name: "all negative",
			args: []string{"--leader-elect", "--leader-elect-lease-duration=-1s", "--leader-elect-renew-deadline=-2s", "--leader-elect-retry-period=-3s"},
			want: []string{
				"--leader-elect-lease-duration must be positive, got -1s",
				"--leader-elect-renew-deadline must be positive, got -2s",
				"--leader-elect-retry-period must be positive, got -3s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseLeaderElectionFlags(t, tt.args...).Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d %q", len(errs), errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("problem %d is %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestLeaderElectionFlagsElection(t *testing.T) {
	client := fake.NewClientset()
	if e := parseLeaderElectionFlags(t).Election(client, "ns", "name", "id"); e != nil {
		t.Errorf("election %+v without --leader-elect, want nil", e)
	}
	e := parseLeaderElectionFlags(t, "--leader-elect", "--leader-elect-retry-period=1s").Election(client, "ns", "name", "id")
	want := LeaderElection{Client: client, Namespace: "ns", Name: "name", Identity: "id",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: time.Second}
	if e == nil || *e != want {
		t.Errorf("election %+v, want %+v", e, want)
	}
}
