package options

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestOptionsConfig(t *testing.T) {
	// Two contexts in each file, so that a context override is observable.
	upstream := writeKubeconfig(t, "hub", map[string]string{
		"hub":   "https://hub.example:6443",
		"other": "https://other-hub.example:6443",
	})
	upstreamKCP := writeKubeconfig(t, "org", map[string]string{
		"org":     "https://kcp.example:6443/clusters/root:org",
		"proxied": "https://kcp.example:6443/front/clusters/root:org:loc/",
		"bad":     "https://kcp.example:6443/clusters/*",
	})
	downstream := writeKubeconfig(t, "kind", map[string]string{
		"kind":  "https://127.0.0.1:40001",
		"kind2": "https://127.0.0.1:40002",
	})

	tests := []struct {
		name  string
		args  []string
		setup func(t *testing.T)
		// check inspects a successful config; wantErr is a substring of the failure.
		check   func(t *testing.T, cfg *syncer.Config)
		wantErr string
	}{
		{
			name: "current contexts of both kubeconfigs",
			args: []string{"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1"},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream host", cfg.UpstreamConfig.Host, "https://hub.example:6443")
				assertEqual(t, "upstream token", cfg.UpstreamConfig.BearerToken, "token-hub")
				assertEqual(t, "downstream host", cfg.DownstreamConfig.Host, "https://127.0.0.1:40001")
				assertEqual(t, "sync target workspace", cfg.SyncTargetWorkspace, logicalcluster.Path{})
				assertEqual(t, "sync target name", cfg.SyncTargetName, "cluster-1")
				assertEqual(t, "admission policy name", cfg.AdmissionPolicyName, "")
				if cfg.Resources != nil || cfg.Workspaces != nil {
					t.Errorf("resources %v and workspaces %v, want none (follow the SyncTarget)", cfg.Resources, cfg.Workspaces)
				}
				if cfg.LeaderElection != nil {
					t.Errorf("leader election %+v, want none without --leader-elect", cfg.LeaderElection)
				}
				assertEqual(t, "deletion budget", *cfg.DeletionBudget, syncer.DefaultDeletionBudget())
				assertEqual(t, "tunnel", cfg.Tunnel, true)
			},
		},
		{
			name: "context overrides",
			args: []string{
				"--upstream-kubeconfig=" + upstream, "--upstream-context=other",
				"--downstream-kubeconfig=" + downstream, "--downstream-context=kind2",
				"--sync-target-name=cluster-1",
			},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream host", cfg.UpstreamConfig.Host, "https://other-hub.example:6443")
				assertEqual(t, "upstream token", cfg.UpstreamConfig.BearerToken, "token-other")
				assertEqual(t, "downstream host", cfg.DownstreamConfig.Host, "https://127.0.0.1:40002")
			},
		},
		{
			name:    "unknown context",
			args:    []string{"--upstream-kubeconfig=" + upstream, "--upstream-context=nope", "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1"},
			wantErr: `failed to load --upstream-kubeconfig "` + upstream + `"`,
		},
		{
			name: "workspace URL stripped and defaulting the sync target workspace",
			args: []string{"--upstream-kubeconfig=" + upstreamKCP, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1"},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream host", cfg.UpstreamConfig.Host, "https://kcp.example:6443")
				assertEqual(t, "sync target workspace", cfg.SyncTargetWorkspace, logicalcluster.NewPath("root:org"))
			},
		},
		{
			name: "workspace URL stripped below a proxy prefix, flag wins",
			args: []string{
				"--upstream-kubeconfig=" + upstreamKCP, "--upstream-context=proxied", "--sync-target-workspace=root:locations",
				"--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1",
			},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream host", cfg.UpstreamConfig.Host, "https://kcp.example:6443/front")
				assertEqual(t, "sync target workspace", cfg.SyncTargetWorkspace, logicalcluster.NewPath("root:locations"))
			},
		},
		{
			name:    "workspace URL without a valid path and no flag",
			args:    []string{"--upstream-kubeconfig=" + upstreamKCP, "--upstream-context=bad", "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1"},
			wantErr: `--sync-target-workspace is not set and the upstream server URL "https://kcp.example:6443/clusters/*" names no valid workspace`,
		},
		{
			name: "workspace URL without a valid path, flag set",
			args: []string{
				"--upstream-kubeconfig=" + upstreamKCP, "--upstream-context=bad", "--sync-target-workspace=root:org",
				"--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1",
			},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream host", cfg.UpstreamConfig.Host, "https://kcp.example:6443")
				assertEqual(t, "sync target workspace", cfg.SyncTargetWorkspace, logicalcluster.NewPath("root:org"))
			},
		},
		{
			name: "rate limits, user agent, resources, workspaces and tuning",
			args: []string{
				"--upstream-kubeconfig=" + upstream, "--sync-target-workspace=root:org:loc",
				"--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--sync-target-uid=uid-1",
				"--qps=12.5", "--burst=25",
				"--resources=deployments.apps,configmaps", "--resources=deployments.apps,ingresses.networking.k8s.io",
				"--workspaces=root:org:a,root:org:b,root:org:a",
				"--workers=2", "--heartbeat-interval=3s", "--downstream-namespace-clean-delay=0", "--resync-period=0",
				"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:9443",
			},
			check: func(t *testing.T, cfg *syncer.Config) {
				for side, rc := range map[string]float32{"upstream": cfg.UpstreamConfig.QPS, "downstream": cfg.DownstreamConfig.QPS} {
					assertEqual(t, side+" qps", rc, float32(12.5))
				}
				assertEqual(t, "upstream burst", cfg.UpstreamConfig.Burst, 25)
				assertEqual(t, "downstream burst", cfg.DownstreamConfig.Burst, 25)
				assertEqual(t, "upstream user agent", cfg.UpstreamConfig.UserAgent, userAgent())
				assertEqual(t, "downstream user agent", cfg.DownstreamConfig.UserAgent, userAgent())
				if !strings.HasPrefix(userAgent(), "workload-syncer/v") {
					t.Errorf("user agent %q, want workload-syncer/<version>", userAgent())
				}
				assertEqual(t, "sync target workspace", cfg.SyncTargetWorkspace, logicalcluster.NewPath("root:org:loc"))
				assertEqual(t, "sync target uid", cfg.SyncTargetUID, "uid-1")
				wantResources := []workloadv1alpha1.ResourceToSync{
					{Group: "apps", Resource: "deployments"},
					{Group: "", Resource: "configmaps"},
					{Group: "networking.k8s.io", Resource: "ingresses"},
				}
				if !slices.Equal(cfg.Resources, wantResources) {
					t.Errorf("resources %v, want %v", cfg.Resources, wantResources)
				}
				wantWorkspaces := []logicalcluster.Path{logicalcluster.NewPath("root:org:a"), logicalcluster.NewPath("root:org:b")}
				if !slices.Equal(cfg.Workspaces, wantWorkspaces) {
					t.Errorf("workspaces %v, want %v", cfg.Workspaces, wantWorkspaces)
				}
				assertEqual(t, "workers", cfg.Workers, 2)
				assertEqual(t, "heartbeat interval", cfg.HeartbeatInterval, 3*time.Second)
				assertEqual(t, "namespace clean delay", cfg.DownstreamNamespaceCleanDelay, time.Duration(0))
				assertEqual(t, "resync period", cfg.ResyncPeriod, time.Duration(0))
				assertEqual(t, "metrics bind address", cfg.MetricsBindAddress, "0")
				assertEqual(t, "health probe bind address", cfg.HealthProbeBindAddress, "127.0.0.1:9443")
			},
		},
		{
			name: "negative qps disables rate limiting on both sides",
			args: []string{"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--qps=-1"},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream qps", cfg.UpstreamConfig.QPS, float32(-1))
				assertEqual(t, "downstream qps", cfg.DownstreamConfig.QPS, float32(-1))
			},
		},
		{
			name:    "static workspaces on a plain hub",
			args:    []string{"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--workspaces=root:org:a"},
			wantErr: "--workspaces needs --sync-target-workspace",
		},
		{
			name:    "virtual-workspace mode on a plain hub",
			args:    []string{"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--upstream-mode=virtual-workspace"},
			wantErr: "--upstream-mode=virtual-workspace needs a kcp upstream",
		},
		{
			name:    "virtual-workspace mode with static workspaces",
			args:    []string{"--upstream-kubeconfig=" + upstreamKCP, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--upstream-mode=virtual-workspace", "--workspaces=root:org:a"},
			wantErr: "cannot be combined with --upstream-mode=virtual-workspace",
		},
		{
			name:    "unknown upstream mode",
			args:    []string{"--upstream-kubeconfig=" + upstreamKCP, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--upstream-mode=proxy"},
			wantErr: "--upstream-mode must be auto, direct or virtual-workspace",
		},
		{
			name: "virtual-workspace mode on kcp",
			args: []string{"--upstream-kubeconfig=" + upstreamKCP, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--upstream-mode=virtual-workspace"},
			check: func(t *testing.T, cfg *syncer.Config) {
				assertEqual(t, "upstream mode", cfg.UpstreamMode, syncer.UpstreamModeVirtualWorkspace)
			},
		},
		{
			name:    "invalid options are reported",
			args:    []string{"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream},
			wantErr: "--sync-target-name is required",
		},
		{
			name: "leader election from the downward API",
			args: []string{"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1", "--leader-elect"},
			setup: func(t *testing.T) {
				t.Setenv(podNamespaceEnv, "tmc-system")
				t.Setenv(podNameEnv, "syncer-7d9f-abcde")
			},
			check: func(t *testing.T, cfg *syncer.Config) {
				le := cfg.LeaderElection
				if le == nil {
					t.Fatal("no leader election config with --leader-elect")
				}
				assertEqual(t, "lease namespace", le.Namespace, "tmc-system")
				assertEqual(t, "lease name", le.Name, "workload-syncer-cluster-1")
				assertEqual(t, "lease duration", le.LeaseDuration, 15*time.Second)
				assertEqual(t, "renew deadline", le.RenewDeadline, 10*time.Second)
				assertEqual(t, "retry period", le.RetryPeriod, 2*time.Second)
				if !strings.HasPrefix(le.Identity, "syncer-7d9f-abcde_") || len(le.Identity) <= len("syncer-7d9f-abcde_") {
					t.Errorf("identity %q, want syncer-7d9f-abcde_<uuid>", le.Identity)
				}
				assertEqual(t, "pod name", cfg.PodName, "tmc-system/syncer-7d9f-abcde")
			},
		},
		{
			name: "leader election with explicit namespace, id and durations",
			args: []string{
				"--upstream-kubeconfig=" + upstream, "--downstream-kubeconfig=" + downstream, "--sync-target-name=cluster-1",
				"--leader-elect", "--leader-election-namespace=syncers", "--leader-election-id=east",
				"--leader-elect-lease-duration=60s", "--leader-elect-renew-deadline=40s", "--leader-elect-retry-period=5s",
			},
			check: func(t *testing.T, cfg *syncer.Config) {
				le := cfg.LeaderElection
				if le == nil {
					t.Fatal("no leader election config with --leader-elect")
				}
				assertEqual(t, "lease namespace", le.Namespace, "syncers")
				assertEqual(t, "lease name", le.Name, "east")
				assertEqual(t, "lease duration", le.LeaseDuration, time.Minute)
				assertEqual(t, "renew deadline", le.RenewDeadline, 40*time.Second)
				assertEqual(t, "retry period", le.RetryPeriod, 5*time.Second)
				host, _ := os.Hostname()
				assertEqual(t, "pod name outside a pod", cfg.PodName, host)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := parseFlags(t, tt.args...)
			if tt.setup != nil {
				tt.setup(t)
			}
			cfg, err := o.Config()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestOptionsConfigDownstreamInCluster(t *testing.T) {
	upstream := writeKubeconfig(t, "hub", map[string]string{"hub": "https://hub.example:6443"})
	o := parseFlags(t, "--upstream-kubeconfig="+upstream, "--sync-target-name=cluster-1")

	_, err := o.Config()
	want := "--downstream-kubeconfig is not set and the syncer is not running in a pod"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
}

func TestOptionsPodName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("no host name: %v", err)
	}
	tests := []struct {
		name          string
		podName       string
		env           map[string]string
		namespaceFile string
		want          string
	}{
		{name: "explicit", podName: "given", env: map[string]string{podNameEnv: "pod", podNamespaceEnv: "ns"}, want: "given"},
		{name: "downward API", env: map[string]string{podNameEnv: "pod", podNamespaceEnv: "ns"}, want: "ns/pod"},
		{name: "namespace from the service-account file", env: map[string]string{podNameEnv: "pod"}, namespaceFile: "sa-ns\n", want: "sa-ns/pod"},
		{name: "pod name without namespace", env: map[string]string{podNameEnv: "pod"}, want: "pod"},
		{name: "outside a pod", want: host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOptions(t)
			o.PodName = tt.podName
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.namespaceFile != "" {
				if err := os.WriteFile(o.serviceAccountNamespaceFile, []byte(tt.namespaceFile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			assertEqual(t, "pod name", o.podName(), tt.want)
		})
	}
}
