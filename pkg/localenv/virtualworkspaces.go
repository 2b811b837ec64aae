package localenv

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
)

// VirtualWorkspacesOptions describe a tmc-virtual-workspaces server to run against the
// environment.
type VirtualWorkspacesOptions struct {
	// Binary is the tmc-virtual-workspaces to run.
	Binary string
	// Name of the process, its log, its directory and its serving certificate; default
	// "tmc-virtual-workspaces".
	Name string
	// Upstream replaces the server's privileged identity (default: the front proxy's root
	// as the admin user); a shard's front proxy (Shard.FrontProxy.BaseConfig) serves that
	// shard's workspaces.
	Upstream *rest.Config
	// Authentication reaches the location workspaces for TokenReviews,
	// SubjectAccessReviews and SyncTargets (default: the environment's front proxy, which
	// routes to every shard, as the admin user).
	Authentication *rest.Config
	// Verbosity is the klog -v level.
	Verbosity int
	// ExtraArgs come last.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for /readyz (default 90s).
	ReadyTimeout time.Duration
}

// VirtualWorkspaces is a running tmc-virtual-workspaces server.
type VirtualWorkspaces struct {
	*Component
	// URL is the server's HTTPS base URL (its certificate is the environment's CA's).
	URL string
}

// StartVirtualWorkspaces runs the tmc-virtual-workspaces binary on a free loopback port
// with a serving certificate of the environment's CA, tracked with the environment, and
// waits until it is ready.
func (env *Environment) StartVirtualWorkspaces(ctx context.Context, opts VirtualWorkspacesOptions) (*VirtualWorkspaces, error) {
	name := opts.Name
	if name == "" {
		name = "tmc-virtual-workspaces"
	}
	cert, err := env.PKI.ServingCert(name)
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	upstream, authentication := opts.Upstream, opts.Authentication
	if upstream == nil {
		upstream = env.UpstreamConfig(AdminUser)
	}
	if authentication == nil {
		authentication = env.UpstreamConfig(AdminUser)
	}
	args := []string{
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + cert.CertFile,
		"--tls-private-key-file=" + cert.KeyFile,
		verbosityArg(opts.Verbosity),
	}
	c, err := env.startComponent(ctx, componentSpec{
		name:        name,
		binary:      opts.Binary,
		kubeconfigs: []kubeconfigFlag{{flag: "upstream-kubeconfig", cfg: upstream}, {flag: "authentication-kubeconfig", cfg: authentication}},
		args:        append(args, opts.ExtraArgs...),
		timeout:     opts.ReadyTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start the virtual-workspace server: %w", err)
	}
	return &VirtualWorkspaces{Component: c, URL: fmt.Sprintf("https://127.0.0.1:%d", port)}, nil
}
