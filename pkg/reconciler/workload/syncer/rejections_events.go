package syncer

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/lru"

	"github.com/tmc-dev/tmc/pkg/reconciler/queue"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	// failedCreateReason is the reason of the Warning Event the StatefulSet and Job
	// controllers record on their object when the apiserver refuses one of its pods.
	failedCreateReason = "FailedCreate"
	// maxRememberedRejections bounds the memory of forwarded failures (one entry per
	// failing downstream StatefulSet or Job, cluster-wide); the least recently seen goes.
	maxRememberedRejections = 2048
)

var (
	statefulSetsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	jobsGVR         = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	cronJobsGVR     = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}

	// rejectingKinds are the kinds whose pod-creation failures only show as downstream
	// Events (no status condition carries them up), with their types.
	rejectingKinds = map[schema.GroupVersionKind]schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Kind: "StatefulSet"}: statefulSetsGVR,
		{Group: "batch", Version: "v1", Kind: "Job"}:        jobsGVR,
	}

	// podNames matches the pod names in a FailedCreate message ("create Pod db-0 in
	// StatefulSet db ...", `pods "db-0" is forbidden`); a Job's pods get a new generated
	// name on every attempt.
	podNames = regexp.MustCompile(`\b[Pp]ods? "?[a-z0-9]([-a-z0-9.]*[a-z0-9])?"?`)
)

// combinedEventsPrefix starts the message of an Event the downstream event correlator
// combines from similar ones (client-go's EventAggregator).
const combinedEventsPrefix = "(combined from similar events): "

// rejectionKey is one FailedCreate Event downstream, queued to be forwarded.
type rejectionKey struct {
	downstreamNamespace string
	// gvr, kind, name and uid name the StatefulSet or Job the Event is about.
	gvr  schema.GroupVersionResource
	kind string
	name string
	uid  types.UID
	// message is the downstream Event's message.
	message string
}

func (k rejectionKey) String() string {
	return k.gvr.String() + "|" + k.downstreamNamespace + "/" + k.name
}

// podRejections forwards the pod-creation failures of downstream StatefulSets and Jobs,
// which their controllers report only as FailedCreate Warning Events on the object, as one
// PodsRejected Warning Event on the upstream object (for a Job a CronJob created
// downstream, on the upstream CronJob). Deployments have a ReplicaFailure condition
// instead, reported by the status controller (rejections.go).
//
// Once per failure: failures holds, per failing downstream object (UID), the last failure
// forwarded — the message with pod names masked, since a Job's retries name a new pod each
// and the correlator later combines them into one Event whose message keeps changing. A
// repeat (count growing, a new Event with another pod name) is not forwarded; a different
// failure of the same object is. An Event that is already downstream when the informer
// first lists counts as forwarded (an earlier run forwarded it, or it began while no syncer
// ran): it fills the memory and records nothing, so a restart records nothing again.
type podRejections struct {
	target syncTarget
	// events is the informer of the downstream FailedCreate Warning Events, cluster-wide.
	events   cache.SharedIndexInformer
	failures *lru.Cache
	rejectionLookups
	queue *queue.Queue[rejectionKey]
}

// rejectionLookups map a downstream failure to the upstream object.
type rejectionLookups struct {
	// locatorOf is false for a downstream namespace that is not ours.
	locatorOf        func(downstreamNamespace string) (workloadv1alpha1.NamespaceLocator, bool)
	downstream       func(schema.GroupVersionResource) (downstreamView, bool)
	downstreamClient dynamic.Interface
	upstream         func(workspace string, gvr schema.GroupVersionResource) (upstreamView, bool)
	// workspaceOf is the watched workspace of a locator's logical cluster.
	workspaceOf func(cluster string) (string, bool)
}

// newPodRejections builds the forwarding with its informer and queue; lookups gives the
// namespace, cache and client lookups it resolves a failure with.
func newPodRejections(target syncTarget, downstreamKube kubernetes.Interface, lookups rejectionLookups, metrics *syncerMetrics, recovery tmc.RecoveryOptions) *podRejections {
	r := &podRejections{target: target, failures: lru.New(maxRememberedRejections), rejectionLookups: lookups}
	r.events = coreinformers.NewFilteredEventInformer(downstreamKube, metav1.NamespaceAll, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.Set{"type": corev1.EventTypeWarning, "reason": failedCreateReason}.String()
	})
	_ = r.events.SetTransform(trimEvent)
	_, _ = r.events.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) {
			if e, ok := obj.(*corev1.Event); ok {
				r.observe(e, isInInitialList)
			}
		},
		UpdateFunc: func(_, obj any) {
			if e, ok := obj.(*corev1.Event); ok {
				r.observe(e, false)
			}
		},
	})
	// Forwarding failures are not sync failures: retried, neither counted nor reported.
	r.queue = queue.New(r.reconcile, queue.Options[rejectionKey]{
		Name: "pod-rejections", Component: "syncer", MetricsProvider: metrics.tmc.WorkqueueMetricsProvider(), Recovery: recovery,
		LogValues: func(k rejectionKey) []any { return []any{"key", k.String()} },
	})
	return r
}

// trimEvent keeps of a downstream Event only what forwarding reads: FailedCreate Events of
// the whole cluster are cached, other tenants' included.
func trimEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name, UID: e.UID, ResourceVersion: e.ResourceVersion},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: e.InvolvedObject.APIVersion, Kind: e.InvolvedObject.Kind,
			Namespace: e.InvolvedObject.Namespace, Name: e.InvolvedObject.Name, UID: e.InvolvedObject.UID,
		},
		Type: e.Type, Reason: e.Reason, Message: e.Message,
	}, nil
}

// run runs the informer and the queue until ctx ends, and waits for both.
func (r *podRejections) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.events.RunWithContext(ctx) })
	r.queue.Run(ctx, 1)
	wg.Wait()
}

// observe queues a downstream Event that reports a new failure of a StatefulSet or Job in
// a namespace of ours; an Event of the informer's initial list is only remembered.
func (r *podRejections) observe(e *corev1.Event, isInInitialList bool) {
	if e.Type != corev1.EventTypeWarning || e.Reason != failedCreateReason {
		return
	}
	involved := e.InvolvedObject
	gvr, ok := rejectingKinds[schema.FromAPIVersionAndKind(involved.APIVersion, involved.Kind)]
	if !ok || involved.UID == "" {
		return
	}
	failure := failureOf(e.Message)
	if last, ok := r.failures.Get(involved.UID); ok && last == failure {
		return
	}
	r.failures.Add(involved.UID, failure)
	if isInInitialList {
		return
	}
	if _, ours := r.locatorOf(involved.Namespace); !ours {
		return
	}
	r.queue.Add(rejectionKey{downstreamNamespace: involved.Namespace, gvr: gvr, kind: involved.Kind, name: involved.Name, uid: involved.UID, message: e.Message})
}

// failureOf is what stays the same between the repeats of one failure: the message
// without the correlator's prefix and with the pod names masked.
func failureOf(message string) string {
	return podNames.ReplaceAllString(strings.TrimPrefix(message, combinedEventsPrefix), "pod")
}

// reconcile records the PodsRejected Event of one downstream failure on the upstream
// object, if the failing object is one this syncer owns.
func (r *podRejections) reconcile(ctx context.Context, key rejectionKey) (time.Duration, error) {
	logger := klog.FromContext(ctx).WithValues("downstreamNamespace", key.downstreamNamespace, "kind", key.kind, "name", key.name)
	locator, ok := r.locatorOf(key.downstreamNamespace)
	if !ok {
		return 0, nil
	}
	owner, ownerGVR, err := r.syncedOwner(ctx, key)
	if err != nil || owner == nil {
		return 0, err
	}
	if owner.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel] != r.target.key {
		logger.V(4).Info("Not forwarding the pod-creation failure of an object this syncer does not own", "owner", owner.GetName())
		return 0, nil
	}
	ws, ok := r.workspaceOf(locator.ClusterName)
	if !ok {
		return 0, nil
	}
	upstream, ok := r.upstream(ws, ownerGVR)
	if !ok {
		return 0, nil
	}
	up, err := upstream.lister.ByNamespace(locator.Namespace).Get(owner.GetName())
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("failed to get the upstream object of %s %s: %w", key.kind, key.name, err)
	}
	upstreamObj := up.(*unstructured.Unstructured)
	if upstreamObj.GetDeletionTimestamp() != nil {
		return 0, nil
	}
	event(upstream, upstreamObj, corev1.EventTypeWarning, podsRejectedReason,
		rejectionMessage(r.target.name, key.kind, key.name, failedCreateReason, key.message))
	logger.V(2).Info("Forwarded a pod-creation failure upstream", "workspace", ws, "upstreamNamespace", locator.Namespace)
	return 0, nil
}

// syncedOwner returns the downstream object whose upstream object hears of the failure:
// the failing StatefulSet or Job itself, or the CronJob controlling the Job. nil when the
// failing object (or its CronJob) is gone or was re-created since the Event.
func (r *podRejections) syncedOwner(ctx context.Context, key rejectionKey) (*unstructured.Unstructured, schema.GroupVersionResource, error) {
	failing, err := r.downstreamObject(ctx, key.gvr, key.downstreamNamespace, key.name, key.uid)
	if err != nil || failing == nil || key.gvr != jobsGVR {
		return failing, key.gvr, err
	}
	ref := metav1.GetControllerOf(failing)
	if ref == nil || ref.Kind != "CronJob" || ref.APIVersion != cronJobsGVR.GroupVersion().String() {
		return failing, key.gvr, nil
	}
	cronJob, err := r.downstreamObject(ctx, cronJobsGVR, key.downstreamNamespace, ref.Name, ref.UID)
	return cronJob, cronJobsGVR, err
}

// downstreamObject returns the downstream object gvr namespace/name with the given UID:
// from the syncer's cache of its own objects, else live (a CronJob's Jobs carry no
// ownership label, and the cache may lag). nil when there is none or it is not readable.
func (r *podRejections) downstreamObject(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string, uid types.UID) (*unstructured.Unstructured, error) {
	if downstream, ok := r.downstream(gvr); ok {
		if obj, err := downstream.lister.ByNamespace(namespace).Get(name); err == nil {
			if u, ok := obj.(*unstructured.Unstructured); ok && u.GetUID() == uid {
				return u, nil
			}
		}
	}
	u, err := r.downstreamClient.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get downstream %s %s/%s: %w", gvr.Resource, namespace, name, err)
	case u.GetUID() != uid:
		return nil, nil
	}
	return u, nil
}
