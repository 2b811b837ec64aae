package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) *Options {
		o := NewOptions()
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return o
	}
	valid := []string{"--upstream-kubeconfig=" + file, "--tls-cert-file=" + file, "--tls-private-key-file=" + file}
	if err := parse(valid...).Validate(); err != nil {
		t.Errorf("valid flags refused: %v", err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "nothing", want: []string{"--upstream-kubeconfig is required", "--tls-cert-file is required", "--tls-private-key-file is required"}},
		{name: "missing authentication kubeconfig", args: append(valid, "--authentication-kubeconfig="+filepath.Join(dir, "nope")), want: []string{"--authentication-kubeconfig"}},
		{name: "bind address", args: append(valid, "--bind-address=localhost"), want: []string{"--bind-address must be an IP address"}},
		{name: "port", args: append(valid, "--secure-port=0"), want: []string{"--secure-port"}},
		{name: "metrics address", args: append(valid, "--metrics-bind-address=8080"), want: []string{"--metrics-bind-address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parse(tt.args...).Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRootConfigDropsTheWorkspace(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	content := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443/clusters/root:org"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kc, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &Options{UpstreamKubeconfig: kc}
	cfg, err := o.UpstreamConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("host %q, want the root", cfg.Host)
	}
	if auth, err := o.AuthenticationConfig(); err != nil || auth != nil {
		t.Errorf("unset --authentication-kubeconfig: got %v, %v; want nil, nil", auth, err)
	}
}
