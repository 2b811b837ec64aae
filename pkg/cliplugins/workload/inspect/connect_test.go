package inspect

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// writeKubeconfig writes a kubeconfig whose current context points at server.
func writeKubeconfig(t *testing.T, server, namespace string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	content := `apiVersion: v1
kind: Config
clusters:
- name: upstream
  cluster:
    server: ` + server + `
contexts:
- name: upstream
  context:
    cluster: upstream
    user: user
    namespace: ` + namespace + `
current-context: upstream
users:
- name: user
  user:
    token: secret
`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKubeconfigUpstream(t *testing.T) {
	tests := []struct {
		server        string
		wantWorkspace string
		// wantURL is the SyncTargets URL of workspace root:locations.
		wantURL string
	}{
		{
			server:        "https://kcp.example:6443/clusters/root:org:team-a",
			wantWorkspace: "root:org:team-a",
			wantURL:       "https://kcp.example:6443/clusters/root:locations/apis/workload.kcp.io/v1alpha1/synctargets",
		},
		{
			server:        "https://proxy.example/kcp/clusters/root:locations",
			wantWorkspace: "root:locations",
			wantURL:       "https://proxy.example/kcp/clusters/root:locations/apis/workload.kcp.io/v1alpha1/synctargets",
		},
		{
			server:        "https://hub.example:6443",
			wantWorkspace: "hub",
			wantURL:       "https://hub.example:6443/clusters/root:locations/apis/workload.kcp.io/v1alpha1/synctargets",
		},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			flags := newUpstreamFlags(true)
			kubeconfig := writeKubeconfig(t, tt.server, "team-ns")
			flags.KubeConfig = &kubeconfig
			up := &kubeconfigUpstream{flags: flags}

			ws, err := up.workspace()
			must(t, err)
			if ws != tt.wantWorkspace {
				t.Errorf("workspace = %q, want %q", ws, tt.wantWorkspace)
			}
			ns, err := up.namespace()
			must(t, err)
			if ns != "team-ns" {
				t.Errorf("namespace = %q, want the context's team-ns", ns)
			}
			current, err := up.tmcClient("")
			must(t, err)
			if got := current.WorkloadV1alpha1().RESTClient().Get().Resource("synctargets").URL().String(); !strings.HasPrefix(got, tt.server+"/apis/") {
				t.Errorf("current workspace URL = %s, want it below %s", got, tt.server)
			}
			location, err := up.tmcClient("root:locations")
			must(t, err)
			if got := location.WorkloadV1alpha1().RESTClient().Get().Resource("synctargets").URL().String(); got != tt.wantURL {
				t.Errorf("location workspace URL = %s, want %s", got, tt.wantURL)
			}
			if _, err := up.tmcClient("Not:A:Path"); err == nil {
				t.Error("an invalid workspace path was accepted")
			}
		})
	}
}

// TestStatusCommandWithKubeconfig runs the exported command against an HTTP server that
// serves one workspace, through the standard kubectl flags.
func TestStatusCommandWithKubeconfig(t *testing.T) {
	list := workloadv1alpha1.SyncTargetList{
		TypeMeta: metav1.TypeMeta{APIVersion: "workload.kcp.io/v1alpha1", Kind: "SyncTargetList"},
		Items:    []workloadv1alpha1.SyncTarget{{ObjectMeta: metav1.ObjectMeta{Name: "cluster-1"}}},
	}
	var paths []string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path != "/clusters/root:locations/apis/workload.kcp.io/v1alpha1/synctargets" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	}))
	defer server.Close()

	streams, out, _ := newStreams()
	cmd := NewStatusCommand(streams)
	err := execute(t, cmd, streams, "--kubeconfig", writeKubeconfig(t, server.URL+"/clusters/root:locations", "default"))
	if err != nil {
		t.Fatalf("status failed: %v (requests: %v)", err, paths)
	}
	if !strings.HasPrefix(out.String(), "NAME ") || !strings.Contains(out.String(), "\ncluster-1 ") {
		t.Errorf("unexpected output:\n%s", out)
	}
	if cmd.Flags().Lookup("namespace") != nil {
		t.Error("status has a --namespace flag, but SyncTargets are cluster-scoped")
	}
}
