package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func parse(t *testing.T, args ...string) *Options {
	t.Helper()
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: server}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "ctx"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOptionsValidate(t *testing.T) {
	kc := writeKubeconfig(t, "https://127.0.0.1:6443")
	valid := []string{"--upstream-kubeconfig=" + kc, "--location-workspaces=root:org:loc", "--workspaces=root:org:a,root:org:b"}
	if err := parse(t, valid...).Validate(); err != nil {
		t.Fatalf("valid flags rejected: %v", err)
	}
	if parse(t, valid...).DiscoverWorkspaces() {
		t.Error("--workspaces given: workspaces must not be discovered")
	}
	// Without --workspaces every workspace with a Placement is discovered.
	discovering := parse(t, "--upstream-kubeconfig="+kc, "--location-workspaces=root:org:loc")
	if err := discovering.Validate(); err != nil || !discovering.DiscoverWorkspaces() {
		t.Errorf("without --workspaces: Validate() = %v, DiscoverWorkspaces() = %v; want nil, true", err, discovering.DiscoverWorkspaces())
	}
	if hub := parse(t, "--upstream-kubeconfig="+kc, "--hub"); hub.DiscoverWorkspaces() {
		t.Error("--hub: the hub is the only workspace, nothing is discovered")
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"--upstream-kubeconfig is required", "--location-workspaces is required"}},
		{append(valid, "--workspaces=root::a"), []string{"--workspaces:"}},
		{append(valid, "--location-workspaces=Root"), []string{"--location-workspaces:"}},
		{append(valid, "--resources=Deployments"), []string{"--resources:"}},
		{append(valid, "--heartbeat-threshold=10ms"), []string{"--heartbeat-threshold must be at least 1s"}},
		{append(valid, "--workers=0"), []string{"--workers must be at least 1"}},
		{append(valid, "--qps=0"), []string{"--qps must not be 0"}},
		{append(valid, "--metrics-bind-address=nope"), []string{"--metrics-bind-address must be host:port"}},
		{append(valid, "--unhealthy-grace-period=-1s"), []string{"--unhealthy-grace-period must not be negative"}},
		{append(valid, "--synctarget-release-grace=-1s"), []string{"--synctarget-release-grace must not be negative"}},
		{append(valid, "--leader-elect", "--leader-election-id="), []string{"--leader-election-namespace and --leader-election-id must be set"}},
		{append(valid, "--leader-elect", "--leader-elect-lease-duration=5s"), []string{"--leader-elect-lease-duration (5s) must be greater than --leader-elect-renew-deadline (10s)"}},
		{append(valid, "--leader-elect", "--leader-elect-retry-period=0"), []string{"--leader-elect-retry-period must be positive"}},
		{[]string{"--upstream-kubeconfig=/no/such/file", "--location-workspaces=root:l", "--workspaces=root:a"}, []string{"--upstream-kubeconfig:"}},
		{[]string{"--upstream-kubeconfig=" + kc, "--hub", "--workspaces=root:a"}, []string{"--hub excludes --location-workspaces and --workspaces"}},
		{[]string{"--upstream-kubeconfig=" + kc, "--hub", "--location-workspaces=hub"}, []string{"--hub excludes --location-workspaces and --workspaces"}},
	} {
		err := parse(t, tc.args...).Validate()
		if err == nil {
			t.Errorf("%v: expected errors %v", tc.args, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.args, err, w)
			}
		}
	}
}

// TestOptionsHub: --hub needs no workspace lists, keeps the hub's URL as it is (there is no
// front-proxy root to reduce it to) and refuses a kcp workspace URL.
func TestOptionsHub(t *testing.T) {
	kc := writeKubeconfig(t, "https://hub.example:6443/prefix")
	o := parse(t, "--upstream-kubeconfig="+kc, "--hub")
	if err := o.Validate(); err != nil {
		t.Fatalf("--hub without workspace lists rejected: %v", err)
	}
	cfg, err := o.UpstreamConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://hub.example:6443/prefix" {
		t.Errorf("hub host %q, want the kubeconfig's server unchanged", cfg.Host)
	}
	o = parse(t, "--upstream-kubeconfig="+writeKubeconfig(t, "https://proxy.example/clusters/root:org"), "--hub")
	if _, err := o.UpstreamConfig(); err == nil || !strings.Contains(err.Error(), "kcp workspace URL") {
		t.Errorf("--hub with a /clusters/ URL: error %v, want a refusal", err)
	}
}

func TestOptionsLeaderElection(t *testing.T) {
	o := parse(t)
	if o.LeaderElect || o.LeaderElectionNamespace != "kube-system" || o.LeaderElectionID != "tmc-controller" ||
		o.LeaseDuration != 15*time.Second || o.RenewDeadline != 10*time.Second || o.RetryPeriod != 2*time.Second {
		t.Errorf("leader-election defaults %+v", o.LeaderElectionFlags)
	}
	o = parse(t, "--leader-elect", "--leader-election-namespace=tmc", "--leader-election-id=lease",
		"--leader-elect-lease-duration=30s", "--leader-elect-renew-deadline=20s", "--leader-elect-retry-period=3s")
	if !o.LeaderElect || o.LeaderElectionNamespace != "tmc" || o.LeaderElectionID != "lease" ||
		o.LeaseDuration != 30*time.Second || o.RenewDeadline != 20*time.Second || o.RetryPeriod != 3*time.Second {
		t.Errorf("leader-election flags not applied: %+v", o.LeaderElectionFlags)
	}
}

func TestOptionsUpstreamConfig(t *testing.T) {
	for _, tc := range []struct{ server, want string }{
		{"https://127.0.0.1:6443", "https://127.0.0.1:6443"},
		{"https://127.0.0.1:6443/clusters/root:org:a", "https://127.0.0.1:6443"},
		{"https://proxy.example/kcp/clusters/root", "https://proxy.example/kcp"},
	} {
		o := parse(t, "--upstream-kubeconfig="+writeKubeconfig(t, tc.server), "--qps=-1", "--burst=7")
		cfg, err := o.UpstreamConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != tc.want {
			t.Errorf("server %s: host %q, want %q", tc.server, cfg.Host, tc.want)
		}
		if cfg.QPS != -1 || cfg.Burst != 7 || !strings.HasPrefix(cfg.UserAgent, "tmc-controller/") {
			t.Errorf("client settings not applied: qps %v burst %d agent %q", cfg.QPS, cfg.Burst, cfg.UserAgent)
		}
	}
	if _, err := (&Options{UpstreamKubeconfig: filepath.Join(os.TempDir(), "missing-kc")}).UpstreamConfig(); err == nil {
		t.Errorf("expected an error for a missing kubeconfig")
	}
	if got := parse(t, "--resources=deployments.apps,configmaps").ParsedResources(); len(got) != 2 || got[0].Group != "apps" {
		t.Errorf("ParsedResources = %v", got)
	}
}
