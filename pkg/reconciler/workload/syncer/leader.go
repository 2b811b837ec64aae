package syncer

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// runWithLeaderElection runs run while this replica holds the downstream Lease.
func runWithLeaderElection(ctx context.Context, downstreamKube kubernetes.Interface, le *LeaderElectionConfig, run func(context.Context) error) error {
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, le.Name,
		downstreamKube.CoreV1(), downstreamKube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: le.Identity})
	if err != nil {
		return fmt.Errorf("failed to create the leader-election lock: %w", err)
	}
	errCh := make(chan error, 1)
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) { errCh <- run(ctx) },
			OnStoppedLeading: func() { klog.FromContext(ctx).Info("Lost leadership") },
		},
	})
	select {
	case err := <-errCh:
		return err
	default:
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("lost leadership")
	}
}
