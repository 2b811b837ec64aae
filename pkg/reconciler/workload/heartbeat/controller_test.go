package heartbeat

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

func TestHeartbeatNewControllerValidation(t *testing.T) {
	full := func() *workspaces.Workspace {
		tmcClient := tmcfake.NewSimpleClientset()
		return &workspaces.Workspace{
			Path:         testWorkspace,
			Kube:         kubefake.NewClientset(),
			Dynamic:      dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()),
			TMC:          tmcClient,
			TMCInformers: tmcinformers.NewSharedInformerFactory(tmcClient, 0),
		}
	}
	conflicting := tmc.NewTMCMetrics("test")
	conflicting.MustRegisterCounterVec(SyncTargetReadyMetric, "not a gauge", []string{"workspace"})
	tests := []struct {
		name      string
		ws        func() *workspaces.Workspace
		threshold time.Duration
		metrics   *tmc.TMCMetrics
		wantErr   string
	}{
		{name: "valid", ws: full, threshold: time.Minute},
		{name: "valid with metrics", ws: full, threshold: time.Minute, metrics: tmc.NewTMCMetrics("test")},
		{name: "nil workspace", ws: func() *workspaces.Workspace { return nil }, threshold: time.Minute, wantErr: "workspace is nil"},
		{name: "no dynamic client", ws: func() *workspaces.Workspace { w := full(); w.Dynamic = nil; return w }, threshold: time.Minute, wantErr: "dynamic"},
		{name: "no kube client", ws: func() *workspaces.Workspace { w := full(); w.Kube = nil; return w }, threshold: time.Minute, wantErr: "Kubernetes client"},
		{name: "no informers", ws: func() *workspaces.Workspace { w := full(); w.TMCInformers = nil; return w }, threshold: time.Minute, wantErr: "informer"},
		{name: "zero threshold", ws: full, wantErr: "threshold"},
		{name: "conflicting metric", ws: full, threshold: time.Minute, metrics: conflicting, wantErr: "metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewController(tt.ws(), tt.threshold, nil, tt.metrics)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("NewController = %v, %v", c, err)
				}
				c.queue.ShutDown()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewController error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// Two controllers (two location workspaces) share one TMCMetrics.
func TestHeartbeatControllersShareMetrics(t *testing.T) {
	m := tmc.NewTMCMetrics("test")
	for _, path := range []string{"root:a", "root:b"} {
		tmcClient := tmcfake.NewSimpleClientset()
		ws := &workspaces.Workspace{Path: path, Kube: kubefake.NewClientset(),
			Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), TMC: tmcClient,
			TMCInformers: tmcinformers.NewSharedInformerFactory(tmcClient, 0)}
		c, err := NewController(ws, time.Minute, nil, m)
		if err != nil {
			t.Fatalf("NewController(%s): %v", path, err)
		}
		c.queue.ShutDown()
	}
}

// recordingQueue is the controller's queue; it records the delays the queue puts a key back
// with: the requeueAfter of a success and the retry delay of a failure.
type recordingQueue struct {
	*queue.Queue[string]
	mu     sync.Mutex
	delays []time.Duration
}

// observe hooks the recorder into the queue's options.
func (q *recordingQueue) observe(opts *queue.Options[string]) {
	opts.OnSuccess = func(_ context.Context, _ string, requeueAfter time.Duration) {
		if requeueAfter > 0 {
			q.record(requeueAfter)
		}
	}
	opts.OnError = func(_ context.Context, _ string, _ *tmc.TMCError, decision queue.Decision) {
		if decision.Retry {
			q.record(decision.After)
		}
	}
}

func (q *recordingQueue) record(d time.Duration) {
	q.mu.Lock()
	q.delays = append(q.delays, d)
	q.mu.Unlock()
}

func (q *recordingQueue) lastDelay(t *testing.T) time.Duration {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.delays) == 0 {
		t.Fatal("nothing was requeued with a delay")
	}
	return q.delays[len(q.delays)-1]
}

func recordQueue(t *testing.T, f *fixture) *recordingQueue {
	t.Helper()
	// The tickers are started by goroutines; wait for them so that they are not taken for
	// an armed timer.
	err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return f.clock.Waiters() == queueTickers, nil
	})
	if err != nil {
		t.Fatalf("the workqueue has %d waiters on its clock, want %d tickers", f.clock.Waiters(), queueTickers)
	}
	f.requeues.Queue = f.c.queue
	return f.requeues
}

// queueTickers is the number of tickers a workqueue with metrics keeps on its clock: the
// delaying queue's heartbeat and the unfinished-work updater.
const queueTickers = 2

// stepWhenArmed advances the fake clock once the workqueue's waiting loop has armed its
// timer for the head of the heap (besides its tickers), so that the step cannot slip in
// between its reading the time and arming the timer.
func stepWhenArmed(t *testing.T, f *fixture, d time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return f.clock.Waiters() > queueTickers, nil
	})
	if err != nil {
		t.Fatalf("the workqueue never armed a timer")
	}
	f.clock.Step(d)
}

// ProcessNext puts a healthy target back into the queue exactly when its heartbeat
// expires, using the injected clock.
func TestHeartbeatRequeuedThroughQueueAtExpiry(t *testing.T) {
	st := syncTarget("st", ptrTime(t0.Add(-20*time.Second)), syncerReadyTrue)
	f := newFixture(t, time.Minute, st)
	q := recordQueue(t, f)
	q.Add("st")
	if !f.c.queue.ProcessNext(t.Context()) {
		t.Fatal("queue shut down")
	}
	if n := len(f.appliesSnapshot()); n != 1 {
		t.Fatalf("wrote %d times, want 1", n)
	}
	if d := q.lastDelay(t); d != 40*time.Second {
		t.Fatalf("requeued after %s, want the remaining 40s", d)
	}
	f.applyToCache(st)

	stepWhenArmed(t, f, 40*time.Second)
	waitForQueueLen(t, f, 1)
	// Processed exactly at expiry: still healthy, looked at again right after.
	f.c.queue.ProcessNext(t.Context())
	if n := len(f.appliesSnapshot()); n != 1 {
		t.Fatalf("wrote %d times at the expiry instant, want no new write", n)
	}
	if d := q.lastDelay(t); d != time.Nanosecond {
		t.Fatalf("requeued at the expiry instant after %s, want 1ns", d)
	}

	stepWhenArmed(t, f, time.Nanosecond)
	waitForQueueLen(t, f, 1)
	f.c.queue.ProcessNext(t.Context())
	last := f.lastApply()
	if c := meta.FindStatusCondition(last.conditions, hbType); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("HeartbeatHealthy after expiry = %+v, want False", c)
	}
	if f.c.queue.Len() != 0 || len(q.delays) != 2 {
		t.Errorf("expired target requeued (delays %v)", q.delays)
	}
}

func waitForQueueLen(t *testing.T, f *fixture, n int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return f.c.queue.Len() == n, nil
	})
	if err != nil {
		t.Fatalf("queue length %d, want %d", f.c.queue.Len(), n)
	}
}

// A failed write is retried with backoff; a Retry-After from the server is honoured.
func TestHeartbeatProcessNextWorkItemRetries(t *testing.T) {
	st := syncTarget("st", ptrTime(t0), syncerReadyTrue)
	f := newFixture(t, time.Minute, st)
	q := recordQueue(t, f)
	f.setApplyErr(apierrors.NewForbidden(workloadv1alpha1.Resource("synctargets"), "st", nil))
	q.Add("st")
	f.c.queue.ProcessNext(t.Context())
	if got := q.Failures("st"); got != 1 {
		t.Fatalf("Failures = %d, want 1", got)
	}

	f.setApplyErr(apierrors.NewTooManyRequests("slow down", 7))
	// A 403 needs somebody to act: it is retried with the slow backoff.
	stepWhenArmed(t, f, tmc.DefaultSlowBackoff.BaseDelay)
	waitForQueueLen(t, f, 1)
	f.c.queue.ProcessNext(t.Context())
	if d := q.lastDelay(t); d != 7*time.Second {
		t.Fatalf("retried after %s, want the server's Retry-After 7s", d)
	}

	f.setApplyErr(nil)
	stepWhenArmed(t, f, 7*time.Second)
	waitForQueueLen(t, f, 1)
	f.c.queue.ProcessNext(t.Context())
	if n := len(f.appliesSnapshot()); n != 1 {
		t.Fatalf("wrote %d times, want 1", n)
	}
	if got := q.Failures("st"); got != 0 {
		t.Errorf("Failures after success = %d, want 0 (forgotten)", got)
	}
}

// The whole controller on started informers: True on start, False exactly after the
// threshold without any event from the API, True again on the next heartbeat.
func TestHeartbeatControllerRun(t *testing.T) {
	const threshold = time.Minute
	st := syncTarget("st", ptrTime(t0), syncerReadyTrue)
	f := newFixture(t, threshold, st)
	f.persist = true

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); f.ws.TMCInformers.Shutdown() })
	f.ws.TMCInformers.Start(ctx.Done())
	wg.Go(func() { f.c.Run(ctx, 2) })

	waitForApply := func(n int, status metav1.ConditionStatus) appliedStatus {
		t.Helper()
		var last appliedStatus
		err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
			applies := f.appliesSnapshot()
			if len(applies) < n {
				return false, nil
			}
			last = applies[n-1]
			return true, nil
		})
		if err != nil {
			t.Fatalf("apply #%d never happened (have %d)", n, len(f.appliesSnapshot()))
		}
		if c := meta.FindStatusCondition(last.conditions, hbType); c == nil || c.Status != status {
			t.Fatalf("apply #%d HeartbeatHealthy = %+v, want %s", n, c, status)
		}
		return last
	}

	waitForApply(1, metav1.ConditionTrue)

	// Advance in 5s steps; the flip must come at the first step past t0+60s.
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, false, func(context.Context) (bool, error) {
		if len(f.appliesSnapshot()) >= 2 {
			return true, nil
		}
		if f.clock.Now().Before(t0.Add(threshold + 5*time.Second)) {
			f.clock.Step(5 * time.Second)
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("heartbeat never expired; applies: %d", len(f.appliesSnapshot()))
	}
	expired := waitForApply(2, metav1.ConditionFalse)
	if !expired.at.After(t0.Add(threshold)) || expired.at.After(t0.Add(threshold+5*time.Second)) {
		t.Errorf("expired at %s, want in (%s, %s]", expired.at, t0.Add(threshold), t0.Add(threshold+5*time.Second))
	}

	// The next heartbeat, an update through the API, brings it back.
	obj, err := f.tmcClient.WorkloadV1alpha1().SyncTargets().Get(ctx, "st", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get SyncTarget: %v", err)
	}
	obj.Status.LastSyncerHeartbeatTime = &metav1.Time{Time: f.clock.Now()}
	obj.ResourceVersion = "beat"
	if _, err := f.tmcClient.WorkloadV1alpha1().SyncTargets().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	waitForApply(3, metav1.ConditionTrue)

	var events []string
	_ = wait.PollUntilContextTimeout(ctx, time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		events = append(events, f.events()...)
		return len(events) >= 2, nil
	})
	if len(events) != 2 || !strings.Contains(events[0], EventReasonHeartbeatMissed) || !strings.Contains(events[1], EventReasonHeartbeatRecovered) {
		t.Errorf("Events %q, want %s then %s", events, EventReasonHeartbeatMissed, EventReasonHeartbeatRecovered)
	}
	if n := len(f.appliesSnapshot()); n != 3 {
		t.Errorf("wrote %d times, want 3", n)
	}
}

// With no injected recorder, Run records real Events on the SyncTarget in the location
// workspace (cluster-scoped objects get theirs in "default").
func TestHeartbeatEventsRecordedOnSyncTarget(t *testing.T) {
	st := syncTarget("st", ptrTime(t0.Add(-time.Hour)), syncerReadyTrue,
		cond(hbType, metav1.ConditionTrue, workloadv1alpha1.ReasonHeartbeatReceived, t0.Add(-time.Hour)),
		cond(readyType, metav1.ConditionTrue, workloadv1alpha1.ReasonReady, t0.Add(-time.Hour)))
	f := newFixture(t, time.Minute, st)
	f.c.recorder = nil

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); f.ws.TMCInformers.Shutdown() })
	f.ws.TMCInformers.Start(ctx.Done())
	wg.Go(func() { f.c.Run(ctx, 1) })

	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := f.ws.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Reason == EventReasonHeartbeatMissed && e.Type == "Warning" &&
				e.InvolvedObject.Kind == "SyncTarget" && e.InvolvedObject.APIVersion == "workload.kcp.io/v1alpha1" &&
				e.InvolvedObject.Name == "st" && e.Source.Component == ControllerName {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s Event on the SyncTarget: %v", EventReasonHeartbeatMissed, err)
	}
}
