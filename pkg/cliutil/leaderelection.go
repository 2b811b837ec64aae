package cliutil

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// runLeading runs run while this replica holds the Lease of le, and returns once run has
// returned: run's error when it returned on its own, nil (or run's non-context error) when
// ctx ended, and an error wrapping ErrLostLeadership when the Lease was lost.
func runLeading(ctx context.Context, name string, le LeaderElection, run func(context.Context) error) error {
	logger := klog.FromContext(ctx).WithValues("lease", klog.KRef(le.Namespace, le.Name), "identity", le.Identity)
	ctx = klog.NewContext(ctx, logger)
	lock := &heldLock{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     le.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}}

	// electorCtx also ends when run returns on its own, which stops renewing and releases
	// the Lease.
	electorCtx, stopElector := context.WithCancel(ctx)
	defer stopElector()
	var returnedWhileLeading atomic.Bool
	runErr := make(chan error, 1)
	elector, configErr := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadingCtx context.Context) {
				logger.Info("Started leading")
				err := run(leadingCtx)
				returnedWhileLeading.Store(leadingCtx.Err() == nil)
				runErr <- err
				stopElector()
			},
			OnStoppedLeading: func() {
				if lock.held.Load() {
					logger.Info("Stopped leading")
				}
			},
		},
	})
	if configErr != nil {
		return fmt.Errorf("failed to configure leader election: %w", configErr)
	}
	elector.Run(electorCtx)

	// The elector starts OnStartedLeading exactly when it has written itself into the Lease;
	// wait for run then, whatever ended the election.
	var err error
	if lock.held.Load() {
		err = <-runErr
	}
	switch {
	case returnedWhileLeading.Load():
		return err
	case ctx.Err() != nil:
		return stopped(ctx, err)
	}
	lost := fmt.Errorf("failed to renew Lease %s/%s: %w", le.Namespace, le.Name, ErrLostLeadership)
	if err != nil && !isContextError(err) {
		return errors.Join(lost, err)
	}
	return lost
}

// heldLock records whether this process ever wrote itself into the Lease as its holder:
// that is when client-go's elector has acquired it and starts OnStartedLeading.
type heldLock struct {
	resourcelock.Interface
	held atomic.Bool
}

func (l *heldLock) Create(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, record)
	l.observe(record, err)
	return err
}

func (l *heldLock) Update(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, record)
	l.observe(record, err)
	return err
}

func (l *heldLock) observe(record resourcelock.LeaderElectionRecord, err error) {
	if err == nil && record.HolderIdentity != "" && record.HolderIdentity == l.Identity() {
		l.held.Store(true)
	}
}
