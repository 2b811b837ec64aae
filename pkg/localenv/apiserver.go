package localenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AdminUser is the user every environment's admin token authenticates as (system:masters).
const AdminUser = "tmc-admin"

// ShardAdminUser is the privileged identity a tmc-controller without a workspace list runs
// as (system:masters, like a kcp shard admin): it lists placements through the wildcard
// endpoint and acts in workspaces nobody granted it anything in.
const ShardAdminUser = "tmc-shard-admin"

// APIServer is one kube-apiserver: a workspace's or a physical cluster's.
type APIServer struct {
	Name    string
	Process *Process
	// URL is the direct https URL of the apiserver (not through the front proxy).
	URL string
	// Port is the secure port; it stays the same across restarts.
	Port int

	pki    *PKI
	tokens *TokenFile
}

// TokenFile is the static token file shared by every apiserver of an environment, so one
// credential works in every workspace, as a kcp user's does.
type TokenFile struct {
	Path   string
	tokens map[string]string // user -> token
}

// NewTokenFile writes a token file for the admin, the given users and ShardAdminUser. Users
// are plain users (group system:authenticated) whose permissions come from RBAC the test
// creates; the admin and the shard admin are system:masters.
func NewTokenFile(dir string, users []string) (*TokenFile, error) {
	tf := &TokenFile{Path: filepath.Join(dir, "tokens.csv"), tokens: map[string]string{}}
	var b strings.Builder
	all := append(append([]string{AdminUser}, users...), ShardAdminUser)
	for i, u := range all {
		tok := randomToken()
		tf.tokens[u] = tok
		group := ""
		if u == AdminUser || u == ShardAdminUser {
			group = "system:masters"
		}
		fmt.Fprintf(&b, "%s,%s,uid-%d,%q\n", tok, u, i, group)
	}
	if err := os.WriteFile(tf.Path, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write token file: %w", err)
	}
	return tf, nil
}

// Token returns the bearer token of user, or "" if the user is unknown.
func (tf *TokenFile) Token(user string) string { return tf.tokens[user] }

// APIServerOptions configures an apiserver.
type APIServerOptions struct {
	Name       string
	EtcdURL    string
	EtcdPrefix string
	// ServiceClusterIPRange defaults to 10.96.0.0/16.
	ServiceClusterIPRange string
	ExtraArgs             []string
	// Env are extra environment variables ("NAME=value") of the process.
	Env []string
}

// StartAPIServer starts a kube-apiserver and waits until /readyz is ok.
func StartAPIServer(ctx context.Context, bins *Binaries, pki *PKI, tokens *TokenFile, opts APIServerOptions, logDir string) (*APIServer, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	serving, err := pki.ServingCert(opts.Name + "-serving")
	if err != nil {
		return nil, err
	}
	if opts.ServiceClusterIPRange == "" {
		opts.ServiceClusterIPRange = "10.96.0.0/16"
	}
	args := []string{
		"--etcd-servers=" + opts.EtcdURL,
		"--etcd-prefix=" + opts.EtcdPrefix,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The endpoint reconciler refuses loopback addresses, and nothing here needs the
		// default/kubernetes Endpoints.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + serving.CertFile,
		"--tls-private-key-file=" + serving.KeyFile,
		"--client-ca-file=" + pki.CAFile,
		"--token-auth-file=" + tokens.Path,
		"--service-account-issuer=https://" + opts.Name + ".tmc.test",
		"--service-account-key-file=" + pki.ServiceAccountPubFile,
		"--service-account-signing-key-file=" + pki.ServiceAccountKeyFile,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=" + opts.ServiceClusterIPRange,
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
	args = append(args, opts.ExtraArgs...)
	process := NewProcess(opts.Name+"-apiserver", bins.Path(BinKubeAPIServer), args, logDir)
	process.Env = opts.Env
	a := &APIServer{
		Name:    opts.Name,
		Process: process,
		URL:     fmt.Sprintf("https://127.0.0.1:%d", port),
		Port:    port,
		pki:     pki,
		tokens:  tokens,
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Start starts the apiserver (again) and waits until it is ready.
func (a *APIServer) Start(ctx context.Context) error {
	if err := a.Process.Start(); err != nil {
		return err
	}
	if err := a.WaitReady(ctx, 60*time.Second); err != nil {
		_ = a.Process.Kill()
		return err
	}
	return nil
}

// Stop stops the apiserver. Its data stays in etcd.
func (a *APIServer) Stop() error { return a.Process.Stop(5 * time.Second) }

// Restart stops and starts the apiserver, keeping its port and data.
func (a *APIServer) Restart(ctx context.Context) error {
	if err := a.Stop(); err != nil {
		return err
	}
	return a.Start(ctx)
}

// WaitReady polls /readyz as the admin until it answers ok.
func (a *APIServer) WaitReady(ctx context.Context, timeout time.Duration) error {
	return waitHTTP(ctx, a.Process, a.httpClient(), a.URL+"/readyz", timeout)
}

func (a *APIServer) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(a.pki.CAData)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &authTransport{
			token: a.tokens.Token(AdminUser),
			base:  &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}
}

// Config returns a rest config for user straight to this apiserver.
func (a *APIServer) Config(user string) *rest.Config {
	return &rest.Config{
		Host:            a.URL,
		BearerToken:     a.tokens.Token(user),
		TLSClientConfig: rest.TLSClientConfig{CAData: a.pki.CAData},
		QPS:             -1,
	}
}

// AdminConfig returns an admin rest config straight to this apiserver.
func (a *APIServer) AdminConfig() *rest.Config { return a.Config(AdminUser) }

type authTransport struct {
	token string
	base  http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(req)
}

// Kubeconfig returns a kubeconfig for cfg, with the given context name.
func Kubeconfig(cfg *rest.Config, name string) *clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	return kc
}
