package cliutil

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

const (
	testNamespace = "tmc-system"
	testLease     = "test-lease"
	testIdentity  = "me"
)

// testElection elects through the fake client quickly: a lost lease is noticed within
// half a second.
func testElection(client *fake.Clientset) *LeaderElection {
	return &LeaderElection{
		Client:        client,
		Namespace:     testNamespace,
		Name:          testLease,
		Identity:      testIdentity,
		LeaseDuration: time.Second,
		RenewDeadline: 500 * time.Millisecond,
		RetryPeriod:   100 * time.Millisecond,
	}
}

// leaderRun is a Run function that reports when it starts and when it has returned, and
// runs until its context ends.
type leaderRun struct {
	started  chan struct{}
	returned atomic.Bool
	err      error
}

func newLeaderRun() *leaderRun { return &leaderRun{started: make(chan struct{})} }

func (r *leaderRun) run(ctx context.Context) error {
	close(r.started)
	<-ctx.Done()
	r.returned.Store(true)
	return r.err
}

// runAsync runs c in the background; the result arrives on the returned channel.
func runAsync(ctx context.Context, c Component) <-chan error {
	done := make(chan error, 1)
	go func() { done <- RunComponent(ctx, c) }()
	return done
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func holder(t *testing.T, client *fake.Clientset) string {
	t.Helper()
	lease, err := client.CoordinationV1().Leases(testNamespace).Get(context.Background(), testLease, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("failed to get the Lease: %v", err)
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "")
}

func TestRunComponentLeadsAndReleasesOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	client := fake.NewClientset()
	r := newLeaderRun()
	prepared := false
	done := runAsync(ctx, Component{
		Name:           "test",
		Prepare:        func(context.Context) error { prepared = true; return nil },
		Run:            r.run,
		LeaderElection: testElection(client),
	})
	waitFor(t, r.started, "Run to start")
	if !prepared {
		t.Error("Run started before Prepare")
	}
	if got := holder(t, client); got != testIdentity {
		t.Errorf("Lease held by %q while Run runs, want %q", got, testIdentity)
	}
	cancel()
	if err := waitFor(t, done, "RunComponent to return"); err != nil {
		t.Errorf("RunComponent after cancel = %v, want nil", err)
	}
	if !r.returned.Load() {
		t.Error("RunComponent returned before Run")
	}
	if got := holder(t, client); got != "" {
		t.Errorf("Lease held by %q after cancel, want it released", got)
	}
}

func TestRunComponentWaitsWhileAnotherLeads(t *testing.T) {
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	now := metav1.NewMicroTime(time.Now())
	client := fake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testLease},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To("other"), LeaseDurationSeconds: ptr.To[int32](60),
			AcquireTime: &now, RenewTime: &now,
		},
	})
	election := testElection(client)
	election.LeaseDuration = time.Minute // the other holder's lease does not expire during the test
	r := newLeaderRun()
	done := runAsync(ctx, Component{Name: "test", Run: r.run, LeaderElection: election})

	select {
	case <-r.started:
		t.Fatal("Run started while another identity holds the Lease")
	case <-time.After(10 * election.RetryPeriod):
	}
	cancel()
	if err := waitFor(t, done, "RunComponent to return"); err != nil {
		t.Errorf("RunComponent after cancel = %v, want nil", err)
	}
	if got := holder(t, client); got != "other" {
		t.Errorf("Lease held by %q, want it left to %q", got, "other")
	}
}

func TestRunComponentLostLease(t *testing.T) {
	// Reactors are installed before the elector starts (the fake's reaction chain is not
	// safe to change concurrently); lost turns them on.
	tests := []struct {
		name string
		// lose installs reactors that make the replica lose its Lease once lost is set, and
		// returns what else happens then.
		lose func(t *testing.T, client *fake.Clientset, lost *atomic.Bool) func()
	}{
		{
			name: "stolen by another identity",
			lose: func(t *testing.T, client *fake.Clientset, lost *atomic.Bool) func() {
				// A real apiserver rejects the former holder's updates with a conflict; the fake
				// does not check resource versions, so a reactor does.
				client.PrependReactor("update", "leases", func(action clienttesting.Action) (bool, runtime.Object, error) {
					lease := action.(clienttesting.UpdateAction).GetObject().(*coordinationv1.Lease)
					if lost.Load() && ptr.Deref(lease.Spec.HolderIdentity, "") != "other" {
						return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), lease.Name, errors.New("the object has been modified"))
					}
					return false, nil, nil
				})
				return func() {
					lease, err := client.CoordinationV1().Leases(testNamespace).Get(context.Background(), testLease, metav1.GetOptions{})
					if err != nil {
						t.Fatal(err)
					}
					now := metav1.NewMicroTime(time.Now())
					lease.Spec.HolderIdentity, lease.Spec.RenewTime = ptr.To("other"), &now
					if _, err := client.CoordinationV1().Leases(testNamespace).Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{
			name: "renewals fail",
			lose: func(_ *testing.T, client *fake.Clientset, lost *atomic.Bool) func() {
				client.PrependReactor("*", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
					if lost.Load() {
						return true, nil, apierrors.NewServiceUnavailable("apiserver unreachable")
					}
					return false, nil, nil
				})
				return func() {}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			client := fake.NewClientset()
			var lost atomic.Bool
			then := tt.lose(t, client, &lost)
			r := newLeaderRun()
			r.err = context.Canceled // as controllers return once their context ends
			done := runAsync(ctx, Component{Name: "test", Run: r.run, LeaderElection: testElection(client)})
			waitFor(t, r.started, "Run to start")

			lost.Store(true)
			then()
			err := waitFor(t, done, "RunComponent to return after losing the Lease")
			if !errors.Is(err, ErrLostLeadership) {
				t.Errorf("RunComponent = %v, want an error wrapping ErrLostLeadership", err)
			}
			if errors.Is(err, context.Canceled) {
				t.Errorf("RunComponent = %v, want Run's context error dropped", err)
			}
			if !r.returned.Load() {
				t.Error("RunComponent returned before Run")
			}
			if ctx.Err() != nil {
				t.Errorf("test context ended (%v): the lease was not lost in time", ctx.Err())
			}
		})
	}
}

func TestRunComponentRunFailsWhileLeading(t *testing.T) {
	ctx := testContext(t)
	client := fake.NewClientset()
	boom := errors.New("boom")
	err := RunComponent(ctx, Component{
		Name:           "test",
		Run:            func(context.Context) error { return boom },
		LeaderElection: testElection(client),
	})
	if !errors.Is(err, boom) || errors.Is(err, ErrLostLeadership) {
		t.Errorf("RunComponent = %v, want Run's error only", err)
	}
	if got := holder(t, client); got != "" {
		t.Errorf("Lease held by %q after Run returned, want it released", got)
	}
}

func TestRunComponentInvalidElection(t *testing.T) {
	election := testElection(fake.NewClientset())
	election.RenewDeadline = election.LeaseDuration
	err := RunComponent(testContext(t), Component{
		Name:           "test",
		Run:            func(context.Context) error { t.Error("Run called"); return nil },
		LeaderElection: election,
	})
	if err == nil {
		t.Error("no error for a renew deadline equal to the lease duration")
	}
}
