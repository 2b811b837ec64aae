package syncer

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// A downstream namespace speaks for an upstream namespace only if its name is the one
// computed from its locator. Anyone who can create namespaces on the shared physical
// cluster can write a locator annotation naming another workspace (and add our ownership
// label); trusting it would copy that namespace's status into the other workspace's objects
// of the same names, queue them, and let the namespace cleanup decide on it. The name check
// makes such a namespace simply not ours: no status goes up from it, no spec key comes from
// it, and it is never deleted. It is reported once per namespace.
//
// The check cannot stop someone who creates the namespace of the computed name before the
// syncer does: the syncer then finds it holding the right locator. Confining who may create
// namespaces downstream (the admission policy `workload sync` generates covers the syncer's
// own credentials only) is the physical cluster admin's part.

// reasonForgedNamespaceLocator is the Event reason of a rejected downstream namespace.
const reasonForgedNamespaceLocator = "ForgedNamespaceLocator"

// forgedLocators reports downstream namespaces whose locator names this SyncTarget under
// another name than the locator's: a log line, a metric and an Event on the SyncTarget,
// once per namespace for the life of the process.
type forgedLocators struct {
	target syncTarget
	// metrics counts each rejected namespace once.
	metrics *syncerMetrics
	// recorder records Events on the SyncTarget; nil until the syncer runs (then only the
	// log and the metric report).
	recorder record.EventRecorder
	logger   klog.Logger

	mu       sync.Mutex
	reported map[string]bool
}

func newForgedLocators(target syncTarget, metrics *syncerMetrics) *forgedLocators {
	return &forgedLocators{target: target, metrics: metrics, logger: klog.Background(), reported: map[string]bool{}}
}

// namesNamespace reports whether loc names downstreamNamespace, and reports the namespace
// the first time it does not.
func (f *forgedLocators) namesNamespace(downstreamNamespace string, loc workloadv1alpha1.NamespaceLocator) bool {
	// kcp's name, or the one TMC gave the namespace before it wrote kcp's leading zeros.
	if loc.IsDownstreamNamespaceName(downstreamNamespace) {
		return true
	}
	want, _ := loc.DownstreamNamespaceName()
	if f == nil {
		return false
	}
	f.mu.Lock()
	first := !f.reported[downstreamNamespace]
	f.reported[downstreamNamespace] = true
	f.mu.Unlock()
	if !first {
		return false
	}
	msg := fmt.Sprintf("Downstream namespace %s carries a namespace locator for logical cluster %s, namespace %s of this SyncTarget, but that locator names namespace %s; the syncer ignores it (no status up, no spec, no deletion)",
		downstreamNamespace, loc.ClusterName, loc.Namespace, want)
	f.logger.Info("Ignoring downstream namespace with a forged locator", "downstreamNamespace", downstreamNamespace,
		"logicalCluster", loc.ClusterName, "upstreamNamespace", loc.Namespace, "expectedDownstreamNamespace", want)
	if f.metrics != nil {
		f.metrics.forgedNamespace()
	}
	if f.recorder != nil {
		f.recorder.Event(&corev1.ObjectReference{APIVersion: workloadv1alpha1.SchemeGroupVersion.String(), Kind: "SyncTarget", Name: f.target.name, UID: f.target.uid},
			corev1.EventTypeWarning, reasonForgedNamespaceLocator, msg)
	}
	return false
}
