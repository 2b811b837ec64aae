package options

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tmc-dev/tmc/pkg/cliutil"
)

// newTestOptions returns default options isolated from the machine the test runs on: no
// downward-API variables, no service-account namespace file, not in a cluster.
func newTestOptions(t *testing.T) *Options {
	t.Helper()
	for _, env := range []string{podNameEnv, podNamespaceEnv, "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} {
		t.Setenv(env, "")
	}
	o := NewOptions()
	o.serviceAccountNamespaceFile = filepath.Join(t.TempDir(), "no-such-namespace-file")
	return o
}

// parseFlags binds fresh test options to a real flag set and parses args into them.
func parseFlags(t *testing.T, args ...string) *Options {
	t.Helper()
	o := newTestOptions(t)
	fs := pflag.NewFlagSet("workload-syncer", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("failed to parse flags %q: %v", args, err)
	}
	return o
}

// writeKubeconfig writes a kubeconfig with one context per entry of servers (context name →
// server URL) and the given current context.
func writeKubeconfig(t *testing.T, current string, servers map[string]string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for name, server := range servers {
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "token-" + name}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	cfg.CurrentContext = current
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatalf("failed to write kubeconfig: %v", err)
	}
	return path
}

func TestOptionsDefaults(t *testing.T) {
	o := parseFlags(t)

	want := &Options{
		UpstreamMode:                  "auto",
		Tunnel:                        true,
		Workers:                       4,
		QPS:                           50,
		Burst:                         100,
		HeartbeatInterval:             20 * time.Second,
		DownstreamNamespaceCleanDelay: 30 * time.Second,
		ResyncPeriod:                  10 * time.Hour,
		DiscoveryInterval:             30 * time.Second,
		DeletionBudgetObjects:         10,
		DeletionBudgetPercent:         20,
		DeletionBudgetWindow:          time.Minute,
		MetricsBindAddress:            ":8080",
		HealthProbeBindAddress:        ":8081",
		LeaderElectionFlags: cliutil.LeaderElectionFlags{
			LeaseDuration: 15 * time.Second,
			RenewDeadline: 10 * time.Second,
			RetryPeriod:   2 * time.Second,
		},
		serviceAccountNamespaceFile: o.serviceAccountNamespaceFile,
	}
	if !equalOptions(o, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *o, *want)
	}
	if NewOptions().serviceAccountNamespaceFile != defaultServiceAccountNamespaceFile {
		t.Errorf("NewOptions reads the namespace from %q, want %q", NewOptions().serviceAccountNamespaceFile, defaultServiceAccountNamespaceFile)
	}
}

func TestOptionsFlags(t *testing.T) {
	o := parseFlags(t,
		"--upstream-kubeconfig=/up", "--upstream-context=up-ctx",
		"--sync-target-workspace=root:org:loc", "--sync-target-name=cluster-1", "--sync-target-uid=abc-123",
		"--admission-policy-name=tmc-syncer-cluster-1-0123abcd",
		"--downstream-kubeconfig=/down", "--downstream-context=down-ctx",
		"--resources=deployments.apps,configmaps", "--resources=services",
		"--workspaces=root:org:a,root:org:b", "--upstream-mode=direct", "--tunnel=false",
		"--workers=8", "--qps=-1", "--burst=7",
		"--heartbeat-interval=5s", "--downstream-namespace-clean-delay=1m", "--resync-period=0", "--discovery-interval=3s",
		"--deletion-budget-objects=-1", "--deletion-budget-percent=5", "--deletion-budget-window=5m",
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:9000",
		"--leader-elect", "--leader-election-namespace=tmc", "--leader-election-id=my-lease",
		"--leader-elect-lease-duration=30s", "--leader-elect-renew-deadline=20s", "--leader-elect-retry-period=3s",
	)

	want := &Options{
		UpstreamKubeconfig: "/up", UpstreamContext: "up-ctx",
		SyncTargetWorkspace: "root:org:loc", SyncTargetName: "cluster-1", SyncTargetUID: "abc-123",
		AdmissionPolicyName:  "tmc-syncer-cluster-1-0123abcd",
		DownstreamKubeconfig: "/down", DownstreamContext: "down-ctx",
		Resources:  []string{"deployments.apps", "configmaps", "services"},
		Workspaces: []string{"root:org:a", "root:org:b"}, UpstreamMode: "direct",
		Workers: 8, QPS: -1, Burst: 7,
		HeartbeatInterval: 5 * time.Second, DownstreamNamespaceCleanDelay: time.Minute, ResyncPeriod: 0, DiscoveryInterval: 3 * time.Second,
		DeletionBudgetObjects: -1, DeletionBudgetPercent: 5, DeletionBudgetWindow: 5 * time.Minute,
		MetricsBindAddress: "0", HealthProbeBindAddress: "127.0.0.1:9000",
		LeaderElectionFlags: cliutil.LeaderElectionFlags{
			LeaderElect: true, LeaderElectionNamespace: "tmc", LeaderElectionID: "my-lease",
			LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 3 * time.Second,
		},
		serviceAccountNamespaceFile: o.serviceAccountNamespaceFile,
	}
	if !equalOptions(o, want) {
		t.Errorf("parsed flags:\n got %+v\nwant %+v", *o, *want)
	}
}

func equalOptions(a, b *Options) bool { return reflect.DeepEqual(a, b) }

func TestOptionsValidate(t *testing.T) {
	upstream := writeKubeconfig(t, "hub", map[string]string{"hub": "https://hub.example:6443"})
	base := []string{"--upstream-kubeconfig=" + upstream, "--sync-target-name=cluster-1"}
	longName := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60)

	tests := []struct {
		name  string
		args  []string
		setup func(t *testing.T, o *Options)
		// wantErrs are substrings, one per expected problem; none means valid.
		wantErrs []string
	}{
		{name: "minimal", args: base},
		{
			name: "everything set",
			args: append(slices.Clone(base),
				"--downstream-kubeconfig="+upstream, "--downstream-context=hub",
				"--sync-target-workspace=root:org:loc", "--sync-target-uid=0b7e5f3a-2c1d-4e5f-8a9b-1c2d3e4f5a6b",
				"--resources=deployments.apps,configmaps,ingresses.networking.k8s.io",
				"--workspaces=root:org:a,root:org:b",
				"--qps=-1", "--burst=0", "--resync-period=0", "--downstream-namespace-clean-delay=0",
				"--metrics-bind-address=0", "--health-probe-bind-address=[::1]:8081",
				"--leader-elect", "--leader-election-namespace=tmc-system"),
		},
		{
			name:     "admission policy name invalid",
			args:     append(slices.Clone(base), "--admission-policy-name=Not_A_Name"),
			wantErrs: []string{`--admission-policy-name: "Not_A_Name" is not a valid object name`},
		},
		{
			name:     "upstream kubeconfig missing",
			args:     []string{"--sync-target-name=cluster-1"},
			wantErrs: []string{"--upstream-kubeconfig is required"},
		},
		{
			name:     "upstream kubeconfig does not exist",
			args:     []string{"--upstream-kubeconfig=/no/such/kubeconfig", "--sync-target-name=cluster-1"},
			wantErrs: []string{`--upstream-kubeconfig: file "/no/such/kubeconfig" does not exist`},
		},
		{
			name:     "upstream kubeconfig is a directory",
			args:     []string{"--upstream-kubeconfig=" + filepath.Dir(upstream), "--sync-target-name=cluster-1"},
			wantErrs: []string{"--upstream-kubeconfig: " + `"` + filepath.Dir(upstream) + `" is a directory`},
		},
		{
			name:     "downstream kubeconfig does not exist",
			args:     append(slices.Clone(base), "--downstream-kubeconfig=/no/such/kubeconfig"),
			wantErrs: []string{`--downstream-kubeconfig: file "/no/such/kubeconfig" does not exist`},
		},
		{
			name:     "downstream context without kubeconfig",
			args:     append(slices.Clone(base), "--downstream-context=kind"),
			wantErrs: []string{"--downstream-context requires --downstream-kubeconfig"},
		},
		{
			name:     "sync target name missing",
			args:     []string{"--upstream-kubeconfig=" + upstream},
			wantErrs: []string{"--sync-target-name is required"},
		},
		{
			name:     "sync target name invalid",
			args:     []string{"--upstream-kubeconfig=" + upstream, "--sync-target-name=Cluster_1"},
			wantErrs: []string{`--sync-target-name: "Cluster_1" is not a valid SyncTarget name`},
		},
		{
			name:     "sync target workspace invalid",
			args:     append(slices.Clone(base), "--sync-target-workspace=root::a"),
			wantErrs: []string{`--sync-target-workspace: "root::a" is not a valid workspace path`},
		},
		{
			name:     "sync target uid with a space",
			args:     append(slices.Clone(base), "--sync-target-uid=abc def"),
			wantErrs: []string{`--sync-target-uid: "abc def" is not a valid UID`},
		},
		{
			name:     "resource not lowercase",
			args:     append(slices.Clone(base), "--resources=Deployments.apps"),
			wantErrs: []string{`--resources: resource "Deployments.apps" must be lowercase`},
		},
		{
			name:     "resource is a subresource",
			args:     append(slices.Clone(base), "--resources=deployments/status.apps"),
			wantErrs: []string{`--resources: "deployments/status.apps": resource name "deployments/status" is not valid`},
		},
		{
			name:     "resource group invalid",
			args:     append(slices.Clone(base), "--resources=deployments.-apps"),
			wantErrs: []string{`--resources: "deployments.-apps": group "-apps" is not valid`},
		},
		{
			name:     "resource empty",
			args:     append(slices.Clone(base), "--resources=configmaps,,secrets"),
			wantErrs: []string{"--resources: empty resource name"},
		},
		{
			name:     "workspace invalid",
			args:     append(slices.Clone(base), "--workspaces=root:org:a,root::a"),
			wantErrs: []string{`--workspaces: "root::a" is not a valid workspace path`},
		},
		{
			name:     "workers zero",
			args:     append(slices.Clone(base), "--workers=0"),
			wantErrs: []string{"--workers must be at least 1"},
		},
		{
			name:     "qps zero",
			args:     append(slices.Clone(base), "--qps=0"),
			wantErrs: []string{"--qps must not be 0"},
		},
		{
			name:     "qps not a number",
			args:     append(slices.Clone(base), "--qps=NaN"),
			wantErrs: []string{"--qps must be a number"},
		},
		{
			name:     "burst zero with positive qps",
			args:     append(slices.Clone(base), "--burst=0"),
			wantErrs: []string{"--burst must be at least 1 when --qps is positive"},
		},
		{
			name:     "heartbeat interval too short",
			args:     append(slices.Clone(base), "--heartbeat-interval=500ms"),
			wantErrs: []string{"--heartbeat-interval must be at least 1s, got 500ms"},
		},
		{
			name:     "namespace clean delay negative",
			args:     append(slices.Clone(base), "--downstream-namespace-clean-delay=-1s"),
			wantErrs: []string{"--downstream-namespace-clean-delay must not be negative"},
		},
		{
			name:     "resync period negative",
			args:     append(slices.Clone(base), "--resync-period=-1m"),
			wantErrs: []string{"--resync-period must not be negative"},
		},
		{
			name:     "deletion budget percent out of range",
			args:     append(slices.Clone(base), "--deletion-budget-percent=101"),
			wantErrs: []string{"--deletion-budget-percent must be between 0 and 100, got 101"},
		},
		{
			name:     "deletion budget percent negative",
			args:     append(slices.Clone(base), "--deletion-budget-percent=-1"),
			wantErrs: []string{"--deletion-budget-percent must be between 0 and 100, got -1"},
		},
		{
			name:     "deletion budget window too short",
			args:     append(slices.Clone(base), "--deletion-budget-window=0"),
			wantErrs: []string{"--deletion-budget-window must be at least 1s, got 0s"},
		},
		{
			name: "deletion budget disabled",
			args: append(slices.Clone(base), "--deletion-budget-objects=-1"),
		},
		{
			name:     "metrics bind address without port",
			args:     append(slices.Clone(base), "--metrics-bind-address=8080"),
			wantErrs: []string{`--metrics-bind-address: "8080" must be "0" to disable or host:port`},
		},
		{
			name:     "health bind address with a named port",
			args:     append(slices.Clone(base), "--health-probe-bind-address=localhost:http"),
			wantErrs: []string{`--health-probe-bind-address: "localhost:http" must be "0" to disable or host:port with a port number`},
		},
		{
			name:     "health bind address empty",
			args:     append(slices.Clone(base), "--health-probe-bind-address="),
			wantErrs: []string{`--health-probe-bind-address: "" must be "0" to disable`},
		},
		{
			name:     "bind addresses equal",
			args:     append(slices.Clone(base), "--metrics-bind-address=:9000", "--health-probe-bind-address=:9000"),
			wantErrs: []string{`--metrics-bind-address and --health-probe-bind-address must differ, both are ":9000"`},
		},
		{
			name: "bind addresses both on a random port",
			args: append(slices.Clone(base), "--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"),
		},
		{
			name:     "leader election outside a pod without namespace",
			args:     append(slices.Clone(base), "--leader-elect"),
			wantErrs: []string{"--leader-election-namespace is required with --leader-elect outside a pod"},
		},
		{
			name:  "leader election namespace from POD_NAMESPACE",
			args:  append(slices.Clone(base), "--leader-elect"),
			setup: func(t *testing.T, _ *Options) { t.Setenv(podNamespaceEnv, "tmc-system") },
		},
		{
			name: "leader election namespace from the service-account file",
			args: append(slices.Clone(base), "--leader-elect"),
			setup: func(t *testing.T, o *Options) {
				o.serviceAccountNamespaceFile = filepath.Join(t.TempDir(), "namespace")
				if err := os.WriteFile(o.serviceAccountNamespaceFile, []byte("tmc-system\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:     "leader election namespace invalid",
			args:     append(slices.Clone(base), "--leader-elect", "--leader-election-namespace=TMC"),
			wantErrs: []string{`--leader-election-namespace: "TMC" is not a valid namespace`},
		},
		{
			name:     "leader election id invalid",
			args:     append(slices.Clone(base), "--leader-elect", "--leader-election-namespace=tmc", "--leader-election-id=My_Lease"),
			wantErrs: []string{`--leader-election-id: "My_Lease" is not a valid Lease name`},
		},
		{
			name:     "leader election id defaulted from a long name",
			args:     []string{"--upstream-kubeconfig=" + upstream, "--sync-target-name=" + longName, "--leader-elect", "--leader-election-namespace=tmc"},
			wantErrs: []string{`(defaulted from --sync-target-name) is not a valid Lease name`},
		},
		{
			name: "leader election id not checked when leader election is off",
			args: append(slices.Clone(base), "--leader-election-id=My_Lease"),
		},
		{
			name:     "lease duration not above renew deadline",
			args:     append(slices.Clone(base), "--leader-elect", "--leader-election-namespace=tmc", "--leader-elect-lease-duration=10s"),
			wantErrs: []string{"--leader-elect-lease-duration (10s) must be greater than --leader-elect-renew-deadline (10s)"},
		},
		{
			name:     "renew deadline not above jittered retry period",
			args:     append(slices.Clone(base), "--leader-elect", "--leader-election-namespace=tmc", "--leader-elect-retry-period=9s"),
			wantErrs: []string{"--leader-elect-renew-deadline (10s) must be greater than 1.2 * --leader-elect-retry-period (9s)"},
		},
		{
			name:     "retry period zero",
			args:     append(slices.Clone(base), "--leader-elect", "--leader-election-namespace=tmc", "--leader-elect-retry-period=0"),
			wantErrs: []string{"--leader-elect-retry-period must be positive"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := parseFlags(t, tt.args...)
			if tt.setup != nil {
				tt.setup(t, o)
			}
			assertErrors(t, o.Validate(), tt.wantErrs)
		})
	}
}

// assertErrors checks that err holds exactly one line per wanted substring, in any order.
func assertErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error:\n%v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(line string) bool { return strings.Contains(line, w) }) {
			t.Errorf("error does not report %q:\n%v", w, err)
		}
	}
}

func TestOptionsValidateReportsAllProblems(t *testing.T) {
	o := parseFlags(t,
		"--workspaces=root::a", "--resources=Deployments", "--workers=0", "--heartbeat-interval=0",
		"--metrics-bind-address=nope", "--leader-elect", "--sync-target-uid=a b",
	)
	assertErrors(t, o.Validate(), []string{
		"--upstream-kubeconfig is required",
		"--sync-target-name is required",
		`--sync-target-uid: "a b" is not a valid UID`,
		`--resources: resource "Deployments" must be lowercase`,
		`--workspaces: "root::a" is not a valid workspace path`,
		"--workers must be at least 1",
		"--heartbeat-interval must be at least 1s",
		`--metrics-bind-address: "nope" must be "0" to disable or host:port`,
		"--leader-election-namespace is required with --leader-elect outside a pod",
	})
}

func assertEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
