package sync

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// syncerKubeconfig returns the upstream kubeconfig of the Secret in manifest.
func syncerKubeconfig(t *testing.T, manifest string) []byte {
	t.Helper()
	for _, doc := range strings.Split(manifest, "\n---\n") {
		if !strings.Contains(doc, "kind: Secret") {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		encoded, _, _ := unstructured.NestedString(u.Object, "data", kubeconfigKey)
		b, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no Secret in the manifest:\n%s", manifest)
	return nil
}

func TestCommandRefusesToCopyInsecureSkipTLSVerify(t *testing.T) {
	f := newFakeUpstream(t, "")
	insecure := rest.TLSClientConfig{Insecure: true}
	_, _, err := runCommandWithTLS(t, f, "https://kcp.example.com/clusters/root:loc", insecure, "east", "--syncer-image", "img")
	if err == nil || !strings.Contains(err.Error(), "insecure-skip-tls-verify") || !strings.Contains(err.Error(), "--syncer-insecure-skip-tls-verify") {
		t.Fatalf("err = %v, want a refusal naming the kubeconfig setting and the flag", err)
	}
	if len(f.kube.Actions())+len(f.tmc.Actions()) > 0 {
		t.Error("the upstream was contacted (a token minted) before refusing")
	}

	stdout, stderr, err := runCommandWithTLS(t, f, "https://kcp.example.com/clusters/root:loc", insecure,
		"east", "--syncer-image", "img", "--syncer-insecure-skip-tls-verify")
	if err != nil {
		t.Fatalf("with the flag: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "Warning: the syncer's kubeconfig skips TLS verification") {
		t.Errorf("no warning on stderr:\n%s", stderr)
	}
	cfg, err := clientcmd.Load(syncerKubeconfig(t, stdout))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Clusters["upstream"].InsecureSkipTLSVerify {
		t.Error("the flag was given but the syncer's kubeconfig verifies TLS")
	}
}

func TestCommandEmbedsTheCertificateAuthorityFile(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte("ca-from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeUpstream(t, "")
	stdout, stderr, err := runCommandWithTLS(t, f, "https://kcp.example.com/clusters/root:loc", rest.TLSClientConfig{CAFile: caFile, ServerName: "kcp"},
		"east", "--syncer-image", "img", "--syncer-insecure-skip-tls-verify")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("warned although the connection verifies TLS:\n%s", stderr)
	}
	cfg, err := clientcmd.Load(syncerKubeconfig(t, stdout))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Clusters["upstream"]
	if string(c.CertificateAuthorityData) != "ca-from-file" || c.CertificateAuthority != "" || c.InsecureSkipTLSVerify || c.TLSServerName != "kcp" {
		t.Errorf("syncer's cluster = %+v, want the CA file's content embedded, TLS verified, the server name kept", c)
	}
}

func TestCommandTokenLifetime(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{nil, DefaultTokenLifetime},
		{[]string{"--token-lifetime", "720h"}, 720 * time.Hour},
		{[]string{"--token-expiration", "10m"}, 10 * time.Minute},
	} {
		f := newFakeUpstream(t, "")
		args := append([]string{"east", "--syncer-image", "img"}, tt.args...)
		if _, stderr, err := runCommand(t, f, "https://kcp.example.com/clusters/root:loc", args...); err != nil {
			t.Fatalf("%v: %v\n%s", tt.args, err, stderr)
		}
		if len(f.requests) != 1 || *f.requests[0].Spec.ExpirationSeconds != int64(tt.want/time.Second) {
			t.Errorf("%v: token requests %+v, want one for %s", tt.args, f.requests, tt.want)
		}
	}
}
