package cliutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/klog/v2"
)

// Servers are HTTP servers started by Serve; Shutdown stops them all.
type Servers []*http.Server

// Serve starts serving h on addr ("" or "0" disables it) and adds the server to s.
func (s *Servers) Serve(ctx context.Context, addr string, h http.Handler, what string) error {
	if addr == "" || addr == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("failed to listen for %s on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	*s = append(*s, srv)
	klog.FromContext(ctx).Info("Serving "+what, "address", l.Addr().String())
	go func() { _ = srv.Serve(l) }()
	return nil
}

// Shutdown stops every server, giving each a few seconds to finish requests.
func (s Servers) Shutdown() {
	for _, srv := range s {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
}
