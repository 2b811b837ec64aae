package syncer

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	workloadlisters "github.com/tmc-dev/tmc/sdk/client/listers/workload/v1alpha1"
)

// A SyncTarget with a deletionTimestamp (held by the tmc-controller's finalizer) is left by
// its live syncer: every upstream object is removed from it as a per-target removal — the
// deletion policy honoured, deletions through the budget with reason synctarget-deleted —
// and released with its state label and per-target annotations. A SyncTarget that is
// simply gone (no deletionTimestamp seen) does not count: nothing is removed on a missing
// read.

// syncTargetDeleting returns whether the served SyncTarget, as cached, has a
// deletionTimestamp.
func syncTargetDeleting(lister workloadlisters.SyncTargetLister, name string) func() bool {
	return func() bool {
		st, err := lister.Get(name)
		return err == nil && st.DeletionTimestamp != nil
	}
}

// requeueOnTargetDeletion queues every key once the SyncTarget's deletionTimestamp
// appears: the cached upstream objects (their next reconcile removes them from the target)
// and the upsynced copies (deleted).
func requeueOnTargetDeletion[K any](informer cache.SharedIndexInformer, keys func() []K, enqueue func(K)) error {
	requeue := func(st *workloadv1alpha1.SyncTarget) {
		if st == nil || st.DeletionTimestamp == nil {
			return
		}
		for _, key := range keys() {
			enqueue(key)
		}
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// On a restart while the target is deleting, the upstream informers queue every
		// object anyway; this covers the ones already running.
		AddFunc: func(obj any) {
			st, _ := obj.(*workloadv1alpha1.SyncTarget)
			requeue(st)
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, _ := oldObj.(*workloadv1alpha1.SyncTarget)
			st, _ := newObj.(*workloadv1alpha1.SyncTarget)
			if old != nil && old.DeletionTimestamp == nil {
				requeue(st)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("failed to watch the SyncTarget for its deletion: %w", err)
	}
	return nil
}

// upstreamKeys returns the keys of every object in the upstream caches.
func (e *engine) upstreamKeys() []specKey {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var keys []specKey
	for k, h := range e.upstreamInformers {
		objs, _ := h.lister.List(labels.Everything())
		for _, obj := range objs {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				keys = append(keys, specKey{workspace: k.workspace, gvr: k.gvr, upstreamNamespace: u.GetNamespace(), name: u.GetName()})
			}
		}
	}
	return keys
}
