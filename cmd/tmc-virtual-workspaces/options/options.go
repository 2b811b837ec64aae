package options

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmc-dev/tmc/pkg/version"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// Options are the flags of tmc-virtual-workspaces.
type Options struct {
	UpstreamKubeconfig       string
	AuthenticationKubeconfig string

	BindAddress       string
	SecurePort        int
	TLSCertFile       string
	TLSPrivateKeyFile string

	MetricsBindAddress     string
	HealthProbeBindAddress string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		BindAddress:            "127.0.0.1",
		SecurePort:             6444,
		MetricsBindAddress:     ":8094",
		HealthProbeBindAddress: ":8095",
	}
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.UpstreamKubeconfig, "upstream-kubeconfig", o.UpstreamKubeconfig, "Kubeconfig of a privileged identity at the upstream's root (a kcp shard or front proxy; a /clusters/<path> suffix is removed): workspaces are reached at <server>/clusters/<name>, every workspace at <server>/clusters/*. Required.")
	fs.StringVar(&o.AuthenticationKubeconfig, "authentication-kubeconfig", o.AuthenticationKubeconfig, "Kubeconfig reaching the location workspaces at <server>/clusters/<location-cluster> (a front proxy routing to every shard): TokenReviews and SubjectAccessReviews are created and SyncTargets read with it; default --upstream-kubeconfig.")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "IP address to serve HTTPS on.")
	fs.IntVar(&o.SecurePort, "secure-port", o.SecurePort, "Port to serve HTTPS on.")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "PEM serving certificate (with intermediates). Required.")
	fs.StringVar(&o.TLSPrivateKeyFile, "tls-private-key-file", o.TLSPrivateKeyFile, "PEM private key of --tls-cert-file. Required.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, `Address (host:port) serving /metrics; "0" disables it.`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, `Address (host:port) serving /healthz, /livez and /readyz; "0" disables it.`)
}

// Validate reports every problem with the flags, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for flag, path := range map[string]string{
		"--upstream-kubeconfig": o.UpstreamKubeconfig, "--tls-cert-file": o.TLSCertFile, "--tls-private-key-file": o.TLSPrivateKeyFile,
	} {
		if path == "" {
			add("%s is required", flag)
		} else if _, err := os.Stat(path); err != nil {
			add("%s: %v", flag, err)
		}
	}
	if o.AuthenticationKubeconfig != "" {
		if _, err := os.Stat(o.AuthenticationKubeconfig); err != nil {
			add("--authentication-kubeconfig: %v", err)
		}
	}
	if net.ParseIP(o.BindAddress) == nil {
		add("--bind-address must be an IP address, got %q", o.BindAddress)
	}
	if o.SecurePort < 1 || o.SecurePort > 65535 {
		add("--secure-port must be between 1 and 65535, got %d", o.SecurePort)
	}
	for flag, addr := range map[string]string{"--metrics-bind-address": o.MetricsBindAddress, "--health-probe-bind-address": o.HealthProbeBindAddress} {
		if addr == "0" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s must be host:port or \"0\": %v", flag, err)
		}
	}
	return errors.Join(errs...)
}

// ServingAddress is the host:port HTTPS is served on.
func (o *Options) ServingAddress() string {
	return net.JoinHostPort(o.BindAddress, strconv.Itoa(o.SecurePort))
}

// UpstreamConfig loads --upstream-kubeconfig and returns the config of the upstream's root.
func (o *Options) UpstreamConfig() (*rest.Config, error) {
	return rootConfig(o.UpstreamKubeconfig, "--upstream-kubeconfig")
}

// AuthenticationConfig loads --authentication-kubeconfig (its root), nil when unset: the
// handler then reviews with the upstream identity.
func (o *Options) AuthenticationConfig() (*rest.Config, error) {
	if o.AuthenticationKubeconfig == "" {
		return nil, nil
	}
	return rootConfig(o.AuthenticationKubeconfig, "--authentication-kubeconfig")
}

func rootConfig(path, flag string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load %s: %w", flag, err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("%s: failed to parse the server URL %q: %w", flag, cfg.Host, err)
	}
	root, _ := logicalcluster.SplitClusterURL(u.Path)
	u.Path, u.RawPath = strings.TrimSuffix(root, "/"), ""
	cfg.Host = u.String()
	// The server forwards its callers' requests: the caller's rate is the limit, not ours.
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "tmc-virtual-workspaces/" + version.Get().GitVersion
	return cfg, nil
}
