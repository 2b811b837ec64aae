package cliutil

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

// SignalContext returns the context of a main: it ends on SIGINT or SIGTERM, and carries
// klog's logger named name. Call stop once the command returns, so that a later signal
// kills the process again.
func SignalContext(name string) (ctx context.Context, stop context.CancelFunc) {
	ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return klog.NewContext(ctx, klog.Background().WithName(name)), stop
}
