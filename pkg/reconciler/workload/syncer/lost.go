package syncer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
)

// lostObjects follows the downstream copies kept because their upstream object vanished
// without a deletion ("upstream lost": restored etcd, re-created workspace, misrouting
// proxy) and the budget did not admit their deletion. Each is counted in the upstream-lost
// gauge and marked failing (type UpstreamLost) for the SyncTarget's ResourcesSynced
// condition while it lasts; its first sighting is recorded in the error summary and the
// error metric.
type lostObjects struct {
	syncTargetName string
	metrics        *syncerMetrics
	errs           *errorLog

	mu   sync.Mutex
	keys map[specKey]bool
}

func newLostObjects(syncTargetName string, metrics *syncerMetrics, errs *errorLog) *lostObjects {
	return &lostObjects{syncTargetName: syncTargetName, metrics: metrics, errs: errs, keys: map[specKey]bool{}}
}

// failingID is the error log's key of a lost object; the queue's own ("spec|…") is
// cleared by every successful reconcile, this one only by forget.
func (l *lostObjects) failingID(key specKey) string { return "upstream-lost|" + key.String() }

// mark records that the copy of key is kept although its upstream object is lost.
func (l *lostObjects) mark(ctx context.Context, req specRequest) {
	l.mu.Lock()
	first := !l.keys[req.key]
	l.keys[req.key] = true
	l.setGaugeLocked()
	l.errs.setFailing(l.failingID(req.key), tmc.TMCErrorTypeUpstreamLost)
	l.mu.Unlock()
	if !first {
		klog.FromContext(ctx).V(4).Info("Upstream object still lost; keeping its downstream copy")
		return
	}
	msg := fmt.Sprintf("%s %s/%s vanished from workspace %s without being deleted while its copy %s/%s on SyncTarget %s still carries TMC's ownership label; the copy is kept until an operator resumes deletions (kubectl tmc workload resume-deletions %s)",
		req.resource.kind, req.key.upstreamNamespace, req.key.name, req.key.workspace, req.downstreamNamespace, req.key.name, l.syncTargetName, l.syncTargetName)
	err := tmc.NewTMCError(tmc.TMCErrorTypeUpstreamLost, errors.New(msg), "upstream object lost", tmc.TMCErrorSeverityHigh).
		WithComponent("syncer").WithOperation("spec").
		WithResource(req.key.gvr.Resource + " " + req.key.upstreamNamespace + "/" + req.key.name).WithWorkspace(req.key.workspace)
	l.errs.record(err)
	l.metrics.error(tmc.TMCErrorTypeUpstreamLost)
	klog.FromContext(ctx).Info("Upstream object vanished without a deletion; keeping its downstream copy until deletions are resumed")
}

// forget ends the record of key: its upstream object is back, or its copy is gone or no
// longer ours, or its deletion was admitted.
func (l *lostObjects) forget(key specKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.keys[key] {
		return
	}
	delete(l.keys, key)
	l.setGaugeLocked()
	l.errs.clearFailing(l.failingID(key))
}

func (l *lostObjects) setGaugeLocked() {
	l.metrics.upstreamLost.WithLabelValues(l.metrics.clusterName).Set(float64(len(l.keys)))
}
