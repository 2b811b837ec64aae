package pods

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

func TestWorkspaceOf(t *testing.T) {
	for _, tc := range []struct {
		host, want string
		wantErr    bool
	}{
		{host: "https://kcp.example:6443/clusters/root:org:team-a", want: "root:org:team-a"},
		{host: "https://kcp.example:6443/clusters/root:org:team-a/", want: "root:org:team-a"},
		{host: "https://proxy.example/prefix/clusters/2a3b4c", want: "2a3b4c"},
		{host: "https://hub.example:6443", wantErr: true},
		{host: "https://hub.example:6443/clusters/", wantErr: true},
	} {
		got, err := workspaceOf(tc.host)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("workspaceOf(%q) = %q, %v; want %q, error %v", tc.host, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPodAccessURL(t *testing.T) {
	for _, tc := range []struct {
		vw, want string
		wantErr  bool
	}{
		{vw: "https://vw.example:6444", want: "https://vw.example:6444/services/pods/clusters/root:org:ws"},
		{vw: "https://vw.example:6444/", want: "https://vw.example:6444/services/pods/clusters/root:org:ws"},
		{vw: "https://proxy.example/vw", want: "https://proxy.example/vw/services/pods/clusters/root:org:ws"},
		{vw: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080/services/pods/clusters/root:org:ws"},
		{vw: "https://vw.example:6444?x=1", wantErr: true},
		{vw: "vw.example:6444", wantErr: true},
		{vw: "https://", wantErr: true},
	} {
		got, err := podAccessURL(tc.vw, "root:org:ws")
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("podAccessURL(%q) = %q, %v; want %q, error %v", tc.vw, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestServerOfViewURL(t *testing.T) {
	got, ok := serverOfViewURL("https://vw.example:6444/services/syncer/root:loc/east/uid-1")
	if !ok || got != "https://vw.example:6444" {
		t.Errorf("got %q, %v", got, ok)
	}
	if _, ok := serverOfViewURL("https://vw.example:6444/syncer"); ok {
		t.Error("a URL without /services/ has no server part")
	}
}

// TestCommandsKeepKubectlFlags: kubectl's own flags, the kubeconfig flags and
// --virtual-workspace-url are all there, and the help names `kubectl tmc`.
func TestCommandsKeepKubectlFlags(t *testing.T) {
	streams := genericiooptions.NewTestIOStreamsDiscard()
	common := []string{"kubeconfig", "context", "namespace", "server", "token", VirtualWorkspaceURLFlag}
	for _, tc := range []struct {
		cmd   *cobra.Command
		flags []string
	}{
		{NewLogsCommand(streams), []string{"follow", "container", "tail", "previous", "all-containers", "selector", "since", "timestamps"}},
		{NewExecCommand(streams), []string{"container", "stdin", "tty", "filename", "quiet"}},
		{NewPortForwardCommand(streams), []string{"address", "pod-running-timeout"}},
	} {
		for _, name := range append(tc.flags, common...) {
			if tc.cmd.Flags().Lookup(name) == nil {
				t.Errorf("%s has no --%s", tc.cmd.Name(), name)
			}
		}
		if !strings.Contains(tc.cmd.Example, "kubectl tmc "+tc.cmd.Name()) {
			t.Errorf("%s's examples do not say kubectl tmc %s", tc.cmd.Name(), tc.cmd.Name())
		}
	}
	if f := NewLogsCommand(streams).Flags().ShorthandLookup("n"); f == nil || f.Name != "namespace" {
		t.Error("logs has no -n")
	}
}

// fakeServer stands in for the front proxy (SyncTargets of the workspace) and the
// virtual-workspace server's pod-access view (discovery, the pod, its log).
type fakeServer struct {
	mu       sync.Mutex
	requests []string
	tokens   []string
	server   *httptest.Server
}

func newFakeServer(t *testing.T, viewPrefix string) *fakeServer {
	f := &fakeServer{}
	f.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.URL.RequestURI())
		f.tokens = append(f.tokens, r.Header.Get("Authorization"))
		f.mu.Unlock()
		f.serve(w, r, viewPrefix)
	}))
	t.Cleanup(f.server.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request, viewPrefix string) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/clusters/root:org:ws/apis/workload.kcp.io/v1alpha1/synctargets" {
		_, _ = fmt.Fprintf(w, `{"kind":"SyncTargetList","apiVersion":"workload.kcp.io/v1alpha1","metadata":{},"items":[
{"metadata":{"name":"west"},"spec":{},"status":{"virtualWorkspaces":[{"syncerURL":"https://other.example/services/syncer/root:loc/west/u2"}]}},
{"metadata":{"name":"east"},"spec":{},"status":{"virtualWorkspaces":[{"syncerURL":"%s/services/syncer/root:loc/east/u1"}]}}]}`, f.server.URL)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, viewPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch path {
	case "/api":
		_, _ = fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`)
	case "/apis":
		_, _ = fmt.Fprint(w, `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`)
	case "/api/v1":
		_, _ = fmt.Fprint(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[
{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},
{"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]}]}`)
	case "/api/v1/namespaces/demo/pods/pod-x":
		_, _ = fmt.Fprint(w, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod-x","namespace":"demo"},
"spec":{"containers":[{"name":"web","image":"nginx"}]},"status":{"phase":"Running"}}`)
	case "/api/v1/namespaces/demo/pods/pod-x/log":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprint(w, "line one\nline two\n")
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...), append([]string(nil), f.tokens...)
}

// writeKubeconfig writes a kubeconfig whose server is the workspace root:org:ws of server.
func writeKubeconfig(t *testing.T, server string) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: ws
  cluster:
    server: %s/clusters/root:org:ws
users:
- name: user
  user:
    token: user-token
contexts:
- name: ws
  context:
    cluster: ws
    user: user
    namespace: default
current-context: ws
`, server)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runLogs runs `kubectl tmc logs args...` and returns its output; a fatal error of kubectl
// fails the test instead of exiting.
func runLogs(t *testing.T, args ...string) string {
	cmdutil.BehaviorOnFatal(func(msg string, code int) { t.Fatalf("kubectl exited %d: %s", code, msg) })
	defer cmdutil.DefaultBehaviorOnFatal()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewLogsCommand(streams)
	cmd.SetArgs(append(args, "--cache-dir="+t.TempDir()))
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("kubectl tmc logs: %v (%s)", err, errOut.String())
	}
	return out.String()
}

const viewPath = "/services/pods/clusters/root:org:ws"

// TestLogsRequestsPodAccessView: `kubectl tmc logs pod-x -n demo` with --virtual-workspace-url
// asks the pod-access view of the kubeconfig's workspace for the log, with the user's token
// and kubectl's query.
func TestLogsRequestsPodAccessView(t *testing.T) {
	vw := newFakeServer(t, "/vw"+viewPath)
	out := runLogs(t, "pod-x", "-n", "demo", "--tail=2", "--kubeconfig="+writeKubeconfig(t, "https://127.0.0.1:1"), "--"+VirtualWorkspaceURLFlag+"="+vw.server.URL+"/vw")
	if out != "line one\nline two\n" {
		t.Errorf("output %q", out)
	}
	requests, tokens := vw.seen()
	want := "/vw" + viewPath + "/api/v1/namespaces/demo/pods/pod-x/log?container=web&tailLines=2"
	if !slices.Contains(requests, want) {
		t.Errorf("no request %s; requests: %q", want, requests)
	}
	for i, tok := range tokens {
		if tok != "Bearer user-token" {
			t.Errorf("request %s carried %q, want the user's token", requests[i], tok)
		}
	}
}

// TestLogsFindsViewFromSyncTargets: without --virtual-workspace-url the view's server is the
// one of the first SyncTarget by name (east) of the workspace.
func TestLogsFindsViewFromSyncTargets(t *testing.T) {
	server := newFakeServer(t, viewPath)
	out := runLogs(t, "pod-x", "-n", "demo", "--kubeconfig="+writeKubeconfig(t, server.server.URL))
	if out != "line one\nline two\n" {
		t.Errorf("output %q", out)
	}
	requests, _ := server.seen()
	if want := viewPath + "/api/v1/namespaces/demo/pods/pod-x/log?container=web"; !slices.Contains(requests, want) {
		t.Errorf("no request %s; requests: %q", want, requests)
	}
}

func TestNoWorkspaceNoView(t *testing.T) {
	streams := genericiooptions.NewTestIOStreamsDiscard()
	cmd := NewLogsCommand(streams)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: hub\n  context:\n    cluster: hub\n    user: u\ncurrent-context: hub\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.SetArgs([]string{"pod-x", "--kubeconfig=" + kubeconfig, "--" + VirtualWorkspaceURLFlag + "=https://vw.example"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "names no workspace") {
		t.Fatalf("want an error naming the missing workspace, got %v", err)
	}
}
