package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/cmd/tmc-virtual-workspaces/options"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/tunnel"
	"github.com/tmc-dev/tmc/pkg/virtualworkspace/podaccess"
	"github.com/tmc-dev/tmc/pkg/virtualworkspace/syncer"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command with args and returns the exit code: 0 once a signal stopped
// the server, 1 on any error.
func run(args []string) int {
	defer cliutil.InitLogs()()
	cmd := newCommand()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		return 1
	}
	return 0
}

func newCommand() *cobra.Command {
	logging := cliutil.NewLogging()
	opts := options.NewOptions()
	cmd := &cobra.Command{
		Use:   "tmc-virtual-workspaces",
		Short: "Serve TMC's virtual workspaces",
		Long: `tmc-virtual-workspaces serves each SyncTarget's syncer one view of every workspace placed
on it, at /services/syncer/<location-cluster>/<synctarget>/<uid>/clusters/<cluster|*>/...:
callers are authenticated by TokenReview and authorised by SubjectAccessReview (verb sync on
synctargets/<name>) in the location workspace, and reach only the objects labelled
state.workload.kcp.io/<key>=Sync, their own metadata on them, and their status, which is
summarised across targets. The syncer opens its reverse tunnel at <its syncer view>/tunnel,
authorised the same way.

At /services/upsyncer/<location-cluster>/<synctarget>/<uid>/clusters/<cluster|*>/... it
serves the same syncers, authorised the same way, the objects they copy up from their
physical cluster (pods, endpoints, endpointslices, persistentvolumes and the SyncTarget's
types): only objects labelled state.workload.kcp.io/<key>=Upsync are seen, created, changed
or deleted, and a namespaced object only in a namespace placed on that SyncTarget.

Users reach their upsynced pods at /services/pods/clusters/<workspace>/... (point kubectl's
--server there): pods/log (get), pods/exec, pods/attach and pods/portforward (create) are
authorised by SubjectAccessReview in that workspace and sent through the tunnel of the
SyncTarget that upsynced the pod; every other request is forwarded to the workspace with the
caller's own token.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			ctx, stop := cliutil.SignalContext("tmc-virtual-workspaces")
			defer stop()
			c, err := newComponent(opts)
			if err != nil {
				return err
			}
			return cliutil.RunComponent(ctx, c)
		},
	}
	opts.AddFlags(cmd.Flags())
	logging.AddFlags(cmd.Flags())
	cliutil.AddVersionFlag(cmd)
	return cmd
}

// newComponent wires the handler, its metrics and the health checks: ready once HTTPS is
// served and the upstream answers.
func newComponent(opts *options.Options) (cliutil.Component, error) {
	upstream, err := opts.UpstreamConfig()
	if err != nil {
		return cliutil.Component{}, err
	}
	authentication, err := opts.AuthenticationConfig()
	if err != nil {
		return cliutil.Component{}, err
	}
	metrics := tmc.NewTMCMetrics("tmc-virtual-workspaces")
	vwMetrics, err := syncer.NewMetrics(metrics.Registerer())
	if err != nil {
		return cliutil.Component{}, fmt.Errorf("failed to register the metrics: %w", err)
	}
	handler, err := newHandler(upstream, authentication, metrics.Registerer(), vwMetrics)
	if err != nil {
		return cliutil.Component{}, err
	}
	upstreamClient, err := rest.HTTPClientFor(upstream)
	if err != nil {
		return cliutil.Component{}, fmt.Errorf("failed to build the upstream client: %w", err)
	}
	var serving atomic.Bool
	health := tmc.NewComponentHealthManager("tmc-virtual-workspaces", tmc.WithHealthRegisterer(metrics.Registerer()))
	if err := errors.Join(
		health.RegisterComponent("serving", func(context.Context) error {
			if !serving.Load() {
				return errors.New("not serving HTTPS yet")
			}
			return nil
		}, tmc.ReadinessOnly()),
		health.RegisterComponent("kcp-connection", func(ctx context.Context) error {
			return upstreamReachable(ctx, upstreamClient, upstream.Host)
		}, tmc.ReadinessOnly(), tmc.WithCheckTimeout(4*time.Second)),
	); err != nil {
		return cliutil.Component{}, err
	}
	return cliutil.Component{
		Name:               "tmc-virtual-workspaces",
		MetricsBindAddress: opts.MetricsBindAddress,
		Metrics:            metrics.Handler(),
		HealthBindAddress:  opts.HealthProbeBindAddress,
		Health:             health.Handler(),
		Run: func(ctx context.Context) error {
			return serveTLS(ctx, opts, handler, func() { serving.Store(true) })
		},
	}, nil
}

// newHandler serves the syncer views (whose syncers open their tunnels at <view>/tunnel)
// and the pod-access view, which reaches pods through those tunnels.
func newHandler(upstream, authentication *rest.Config, reg prometheus.Registerer, vwMetrics *syncer.Metrics) (http.Handler, error) {
	tunnels := tunnel.NewRegistry(tunnel.RegistryOptions{Registerer: reg})
	syncerHandler, err := syncer.NewHandler(syncer.Options{Upstream: upstream, Authentication: authentication, Metrics: vwMetrics, Tunnel: tunnels.Accept})
	if err != nil {
		return nil, err
	}
	podMetrics, err := podaccess.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("failed to register the metrics: %w", err)
	}
	// Users name their workspace by path as often as by name: only the front proxy (the
	// authentication upstream, where there is one) resolves both.
	podUpstream := authentication
	if podUpstream == nil {
		podUpstream = upstream
	}
	podHandler, err := podaccess.NewHandler(podaccess.Options{Upstream: podUpstream, Tunnels: tunnels, Metrics: podMetrics})
	if err != nil {
		return nil, err
	}
	// A prefix switch, not a ServeMux: the views parse (and refuse) their paths themselves,
	// and every other path stays the syncer handler's 404 Status.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, workloadv1alpha1.PodAccessVirtualWorkspacePrefix) {
			podHandler.ServeHTTP(w, r)
			return
		}
		syncerHandler.ServeHTTP(w, r)
	}), nil
}

// upstreamReachable reports whether the upstream answers HTTP at all: any answer below 500
// (a front proxy serves nothing at its root) means it is reachable.
func upstreamReachable(ctx context.Context, client *http.Client, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("failed to build the upstream probe: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("upstream unreachable: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("upstream answered %d", resp.StatusCode)
	}
	return nil
}

// serveTLS serves handler over HTTPS until ctx ends; ready is called once it listens.
func serveTLS(ctx context.Context, opts *options.Options, handler http.Handler, ready func()) error {
	cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSPrivateKeyFile)
	if err != nil {
		return fmt.Errorf("failed to load the serving certificate: %w", err)
	}
	l, err := net.Listen("tcp", opts.ServingAddress())
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", opts.ServingAddress(), err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.ServeTLS(l, "", "") }()
	klog.FromContext(ctx).Info("Serving the virtual workspaces", "address", l.Addr().String())
	ready()
	select {
	case err := <-errCh:
		return fmt.Errorf("failed to serve HTTPS: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Watches do not end by themselves: cut them.
		_ = srv.Close()
	}
	return nil
}
