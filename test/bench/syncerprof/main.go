package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/cmd/workload-syncer/options"
	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer"
)

func main() {
	os.Exit(run())
}

func run() int {
	defer cliutil.InitLogs()()
	logging := cliutil.NewLogging()
	opts := options.NewOptions()
	var pprofAddress string
	cmd := &cobra.Command{
		Use:          "syncerprof",
		Short:        "workload-syncer with a pprof endpoint, for benchmarks",
		SilenceUsage: true,
		RunE: func(*cobra.Command, []string) error {
			if err := logging.Apply(); err != nil {
				return err
			}
			cfg, err := opts.Config()
			if err != nil {
				return err
			}
			s, err := syncer.New(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			ctx = klog.NewContext(ctx, klog.Background().WithName("workload-syncer"))
			if pprofAddress != "" {
				stop, err := servePprof(pprofAddress)
				if err != nil {
					return err
				}
				defer stop()
			}
			return s.Run(ctx)
		},
	}
	opts.AddFlags(cmd.Flags())
	logging.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&pprofAddress, "pprof-bind-address", "", "Address (host:port) serving /debug/pprof/; empty disables it.")
	if err := cmd.Execute(); err != nil {
		return 1
	}
	return 0
}

func servePprof(addr string) (func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.Background().Error(err, "pprof server failed")
		}
	}()
	return func() { _ = srv.Close() }, nil
}
