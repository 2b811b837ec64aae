package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

var (
	configMapsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	ingressesGVR   = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// eventType is what happened to a watched object.
type eventType int

const (
	eventAdd eventType = iota
	eventUpdate
	eventDelete
)

// tracker is the harness's own watch on one resource: an informer whose events are matched
// against waiters registered before the change they wait for, and timestamped on arrival.
// It times everything the benchmarks report as latency.
type tracker struct {
	name     string
	informer cache.SharedIndexInformer
	stopped  chan struct{}

	mu      sync.Mutex
	waiters map[string][]*waiter
}

// waiter waits for the first event on one object that satisfies pred.
type waiter struct {
	pred func(eventType, *unstructured.Unstructured) bool
	done chan struct{}
	at   time.Time
	// group, when set, counts the waiter when it fires.
	group *waitGroup
}

// waitGroup counts fired waiters, remembers the last firing time and closes done when
// every waiter fired.
type waitGroup struct {
	want  int64
	fired atomic.Int64
	mu    sync.Mutex
	last  time.Time
	done  chan struct{}
}

func newWaitGroup(n int) *waitGroup {
	g := &waitGroup{want: int64(n), done: make(chan struct{})}
	if n == 0 {
		close(g.done)
	}
	return g
}

func (g *waitGroup) fire(at time.Time) {
	g.mu.Lock()
	if at.After(g.last) {
		g.last = at
	}
	g.mu.Unlock()
	if g.fired.Add(1) == g.want {
		close(g.done)
	}
}

// wait blocks until every waiter fired, or fails after timeout naming how many did.
func (g *waitGroup) wait(ctx context.Context, timeout time.Duration, what string) error {
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("%s: only %d of %d seen within %s", what, g.fired.Load(), g.want, timeout)
	}
}

func (g *waitGroup) lastAt() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// startTracker starts an informer on gvr in every namespace, filtered by labelSelector, and
// waits until it has synced.
func startTracker(ctx context.Context, name string, client dynamic.Interface, gvr schema.GroupVersionResource, labelSelector string) (*tracker, error) {
	t := &tracker{name: name, waiters: map[string][]*waiter{}, stopped: make(chan struct{})}
	t.informer = dynamicinformer.NewFilteredDynamicInformer(client, gvr, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = labelSelector }).Informer()
	if _, err := t.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { t.handle(eventAdd, obj) },
		UpdateFunc: func(_, obj interface{}) { t.handle(eventUpdate, obj) },
		DeleteFunc: func(obj interface{}) { t.handle(eventDelete, obj) },
	}); err != nil {
		return nil, fmt.Errorf("failed to add handler to the %s tracker: %w", name, err)
	}
	go func() {
		defer close(t.stopped)
		t.informer.RunWithContext(ctx)
	}()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), t.informer.HasSynced) {
		return nil, fmt.Errorf("the %s tracker did not sync", name)
	}
	return t, nil
}

// waitStopped waits until the informer has stopped after its context ended.
func (t *tracker) waitStopped(timeout time.Duration) {
	select {
	case <-t.stopped:
	case <-time.After(timeout):
	}
}

func (t *tracker) handle(ev eventType, obj interface{}) {
	now := time.Now()
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	key := u.GetNamespace() + "/" + u.GetName()
	t.mu.Lock()
	ws := t.waiters[key]
	if len(ws) == 0 {
		t.mu.Unlock()
		return
	}
	var keep []*waiter
	var fired []*waiter
	for _, w := range ws {
		if w.pred(ev, u) {
			fired = append(fired, w)
		} else {
			keep = append(keep, w)
		}
	}
	if len(keep) == 0 {
		delete(t.waiters, key)
	} else {
		t.waiters[key] = keep
	}
	t.mu.Unlock()
	for _, w := range fired {
		w.at = now
		close(w.done)
		if w.group != nil {
			w.group.fire(now)
		}
	}
}

// expect registers a waiter for namespace/name. Register it before causing the change.
func (t *tracker) expect(namespace, name string, group *waitGroup, pred func(eventType, *unstructured.Unstructured) bool) *waiter {
	w := &waiter{pred: pred, done: make(chan struct{}), group: group}
	key := namespace + "/" + name
	t.mu.Lock()
	t.waiters[key] = append(t.waiters[key], w)
	t.mu.Unlock()
	return w
}

// wait returns when the waiter fired, or fails after timeout.
func (w *waiter) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	select {
	case <-w.done:
		return w.at, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(timeout):
		return time.Time{}, fmt.Errorf("not seen within %s", timeout)
	}
}

// firedAt returns when the waiter fired, or false.
func (w *waiter) firedAt() (time.Time, bool) {
	select {
	case <-w.done:
		return w.at, true
	default:
		return time.Time{}, false
	}
}

// exists matches any event that leaves the object present.
func exists(ev eventType, _ *unstructured.Unstructured) bool { return ev != eventDelete }

// deleted matches the deletion of the object.
func deleted(ev eventType, _ *unstructured.Unstructured) bool { return ev == eventDelete }

// dataIs matches a ConfigMap whose data[key] is value.
func dataIs(key, value string) func(eventType, *unstructured.Unstructured) bool {
	return func(ev eventType, u *unstructured.Unstructured) bool {
		if ev == eventDelete {
			return false
		}
		v, found, _ := unstructured.NestedString(u.Object, "data", key)
		return found && v == value
	}
}
