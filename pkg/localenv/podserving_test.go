package localenv

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestPodServingFiles(t *testing.T) {
	env := &Environment{Dir: t.TempDir()}
	ps, err := env.setUpPodServing("east", "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range env.closers {
			_ = c()
		}
	}()
	if err := ps.AppendPodLog("appended"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(ps.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("log has %d lines, want 4: %q", len(lines), lines)
	}
	for _, line := range lines {
		// CRI format: <RFC3339Nano> stdout F <text>
		fields := strings.SplitN(line, " ", 4)
		if len(fields) != 4 || fields[1] != "stdout" || fields[2] != "F" {
			t.Fatalf("line %q is not in the CRI log format", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, fields[0]); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
	if !strings.HasSuffix(lines[3], " appended") {
		t.Errorf("last line %q", lines[3])
	}

	config, err := os.ReadFile(ps.configPath)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]any{}
	for _, doc := range strings.Split(string(config), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("config document does not parse: %v\n%s", err, doc)
		}
		kinds[obj["kind"].(string)] = obj
	}
	for _, kind := range []string{"ClusterLogs", "ClusterExec", "ClusterPortForward"} {
		if kinds[kind] == nil {
			t.Errorf("config has no %s", kind)
		}
	}
	if !strings.Contains(string(config), ps.LogPath) {
		t.Error("ClusterLogs does not read the log file")
	}

	resp, err := http.Get("http://" + ps.PortForwardTarget + "/hello")
	if err != nil {
		t.Fatalf("echo server: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if want := EchoServerGreeting + " east GET /hello\n"; string(body) != want {
		t.Errorf("echo server answered %q, want %q", body, want)
	}
}

func TestPodServingChosenTarget(t *testing.T) {
	env := &Environment{Dir: t.TempDir()}
	ps, err := env.setUpPodServing("west", "127.0.0.1:9999")
	if err != nil {
		t.Fatal(err)
	}
	if ps.PortForwardTarget != "127.0.0.1:9999" || len(env.closers) != 0 {
		t.Errorf("target %q, %d closers: a chosen target starts no echo server", ps.PortForwardTarget, len(env.closers))
	}
	config, _ := os.ReadFile(ps.configPath)
	if !strings.Contains(string(config), `address: "127.0.0.1"`) || !strings.Contains(string(config), "port: 9999") {
		t.Errorf("config does not forward to the chosen target:\n%s", config)
	}
}
