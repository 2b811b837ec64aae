package syncer

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	stsRejected = `create Pod db-0 in StatefulSet db failed error: pods "db-0" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`
	jobRejected = `Error creating: pods "%s" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`
)

var workloadKinds = map[schema.GroupVersionResource]schema.GroupVersionKind{
	statefulSetsGVR: {Group: "apps", Version: "v1", Kind: "StatefulSet"},
	jobsGVR:         {Group: "batch", Version: "v1", Kind: "Job"},
	cronJobsGVR:     {Group: "batch", Version: "v1", Kind: "CronJob"},
}

// acceptWorkloadTypes adds StatefulSets, Jobs and CronJobs to the env's accepted types,
// with empty caches on both sides.
func (env *testEnv) acceptWorkloadTypes() {
	for gvr, gvk := range workloadKinds {
		env.engine.resources[gvr] = resourceInfo{gvr: gvr, kind: gvk.Kind, hasStatus: true}
		env.upstreamCaches[gvr], env.downstreamCaches[gvr] = newIndexer(), newIndexer()
		env.engine.upstreamInformers[upstreamInformerKey{workspace: testWorkspace, gvr: gvr}] = env.handle(env.upstreamCaches[gvr], gvr)
		env.engine.downstreamInformers[gvr] = env.handle(env.downstreamCaches[gvr], gvr)
	}
}

// upstreamWorkload is an upstream object of kind gvr's kind, like upstreamConfigMap.
func upstreamWorkload(gvr schema.GroupVersionResource, name string, opts ...objectOption) *unstructured.Unstructured {
	u := upstreamConfigMap(name)
	u.SetAPIVersion(workloadKinds[gvr].GroupVersion().String())
	u.SetKind(workloadKinds[gvr].Kind)
	delete(u.Object, "data")
	for _, o := range opts {
		o(u)
	}
	return u
}

// failedCreate is a FailedCreate Warning Event downstream about kind/name (uid) in
// namespace ns.
func failedCreate(eventName string, gvk schema.GroupVersionKind, ns, name string, uid types.UID, message string) *corev1.Event {
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: eventName, UID: types.UID("event-uid-" + eventName)},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Namespace: ns, Name: name, UID: uid,
		},
		Type: corev1.EventTypeWarning, Reason: failedCreateReason, Message: message, Count: 1,
	}
}

// seen is one downstream Event as the informer delivers it.
type seen struct {
	event       *corev1.Event
	initialList bool
}

// forward feeds the Events to the forwarding and reconciles what it queued.
func (env *testEnv) forward(t *testing.T, events ...seen) {
	t.Helper()
	for _, s := range events {
		env.rejections.observe(s.event, s.initialList)
		for _, key := range env.rejections.queue.Drain() {
			if _, err := env.rejections.reconcile(t.Context(), key); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func withCount(e *corev1.Event, count int32) *corev1.Event {
	e = e.DeepCopy()
	e.Count = count
	return e
}

// The FailedCreate Events of a StatefulSet or Job of ours downstream reach the upstream
// object once per failure (for a CronJob's Job, the upstream CronJob); nothing else does.
func TestPodRejectionsForwardFailedCreateEvents(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	sts, job, cronJob := upstreamWorkload(statefulSetsGVR, "db"), upstreamWorkload(jobsGVR, "migrate"), upstreamWorkload(cronJobsGVR, "nightly")
	stsGVK, jobGVK := workloadKinds[statefulSetsGVR], workloadKinds[jobsGVR]
	stsUID, jobUID := types.UID("downstream-uid-db"), types.UID("downstream-uid-migrate")
	stsEvent := failedCreate("db.1", stsGVK, dsNS, "db", stsUID, stsRejected)
	jobEvent := func(eventName, pod string) *corev1.Event {
		return failedCreate(eventName, jobGVK, dsNS, "migrate", jobUID, strings.ReplaceAll(jobRejected, "%s", pod))
	}
	// The Job the downstream CronJob controller created: no ownership label, controlled by
	// the downstream copy of the CronJob.
	cronJobsJob := func(cronJobUID types.UID) *unstructured.Unstructured {
		u := upstreamWorkload(jobsGVR, "nightly-29000")
		u.SetNamespace(dsNS)
		u.SetUID("downstream-uid-nightly-29000")
		u.SetLabels(map[string]string{"app": "nightly"})
		u.SetFinalizers(nil)
		u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", UID: cronJobUID, Controller: ptr.To(true)}})
		return u
	}
	cronJobEvent := failedCreate("nightly-29000.1", jobGVK, dsNS, "nightly-29000", "downstream-uid-nightly-29000", strings.ReplaceAll(jobRejected, "%s", "nightly-29000-abcde"))
	unlabelledCronJob := syncedCopy(t, cronJob)
	unlabelledCronJob.SetLabels(map[string]string{"app": "nightly"})
	otherTenant := syncedCopy(t, sts, withLabel(workloadv1alpha1.InternalDownstreamClusterLabel, otherStKey))
	unlabelled := syncedCopy(t, sts)
	unlabelled.SetLabels(map[string]string{"app": "db"})

	for _, tc := range []struct {
		name       string
		upstream   []*unstructured.Unstructured
		downstream []*unstructured.Unstructured
		liveOnly   []*unstructured.Unstructured
		events     []seen
		// want are the kinds of the upstream objects that get a PodsRejected Event, in order.
		want []string
	}{
		{name: "StatefulSet: one Event", upstream: []*unstructured.Unstructured{sts}, downstream: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: stsEvent}}, want: []string{"StatefulSet"}},
		{name: "StatefulSet not in the cache yet: read live", upstream: []*unstructured.Unstructured{sts}, liveOnly: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: stsEvent}}, want: []string{"StatefulSet"}},
		{name: "repeats of the Event: one Event", upstream: []*unstructured.Unstructured{sts}, downstream: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: stsEvent}, {event: withCount(stsEvent, 2)}, {event: withCount(stsEvent, 7)}}, want: []string{"StatefulSet"}},
		{name: "already downstream when the syncer starts: none, nor on its repeats", upstream: []*unstructured.Unstructured{sts}, downstream: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: stsEvent, initialList: true}, {event: withCount(stsEvent, 2)}}},
		{name: "a different failure of the same object: one Event each", upstream: []*unstructured.Unstructured{sts}, downstream: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: stsEvent}, {event: failedCreate("db.2", stsGVK, dsNS, "db", stsUID, `create Pod db-0 in StatefulSet db failed error: pods "db-0" is forbidden: exceeded quota: compute`)}},
			want:   []string{"StatefulSet", "StatefulSet"}},
		{name: "Job: one Event, also when each retry names another pod and the correlator combines them",
			upstream: []*unstructured.Unstructured{job}, downstream: []*unstructured.Unstructured{syncedCopy(t, job)},
			events: []seen{{event: jobEvent("migrate.1", "migrate-x2k4q")}, {event: jobEvent("migrate.2", "migrate-p9z7m")},
				{event: failedCreate("migrate.3", jobGVK, dsNS, "migrate", jobUID, combinedEventsPrefix+strings.ReplaceAll(jobRejected, "%s", "migrate-b5n2w"))}},
			want: []string{"Job"}},
		{name: "Job of a CronJob: one Event on the upstream CronJob", upstream: []*unstructured.Unstructured{cronJob}, downstream: []*unstructured.Unstructured{syncedCopy(t, cronJob)},
			liveOnly: []*unstructured.Unstructured{cronJobsJob("downstream-uid-nightly")}, events: []seen{{event: cronJobEvent}}, want: []string{"CronJob"}},
		{name: "Job of a CronJob without ownership label: none", upstream: []*unstructured.Unstructured{cronJob},
			liveOnly: []*unstructured.Unstructured{unlabelledCronJob, cronJobsJob("downstream-uid-nightly")}, events: []seen{{event: cronJobEvent}}},
		{name: "Job of an earlier CronJob of the same name: none", upstream: []*unstructured.Unstructured{cronJob}, downstream: []*unstructured.Unstructured{syncedCopy(t, cronJob)},
			liveOnly: []*unstructured.Unstructured{cronJobsJob("uid-of-a-deleted-cronjob")}, events: []seen{{event: cronJobEvent}}},
		{name: "namespace not ours: none", upstream: []*unstructured.Unstructured{sts}, downstream: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: failedCreate("db.1", stsGVK, "kube-system", "db", stsUID, stsRejected)}}},
		{name: "StatefulSet of another SyncTarget in our namespace: none", upstream: []*unstructured.Unstructured{sts}, liveOnly: []*unstructured.Unstructured{otherTenant},
			events: []seen{{event: stsEvent}}},
		{name: "StatefulSet without ownership label: none", upstream: []*unstructured.Unstructured{sts}, liveOnly: []*unstructured.Unstructured{unlabelled},
			events: []seen{{event: stsEvent}}},
		{name: "about an earlier object of the same name: none", upstream: []*unstructured.Unstructured{sts}, downstream: []*unstructured.Unstructured{syncedCopy(t, sts)},
			events: []seen{{event: failedCreate("db.1", stsGVK, dsNS, "db", "uid-of-a-deleted-db", stsRejected)}}},
		{name: "upstream object being deleted: none", upstream: []*unstructured.Unstructured{upstreamWorkload(statefulSetsGVR, "db", deleting)},
			downstream: []*unstructured.Unstructured{syncedCopy(t, sts)}, events: []seen{{event: stsEvent}}},
		{name: "ReplicaSet (reported by the Deployment's condition): none",
			events: []seen{{event: failedCreate("web.1", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, dsNS, "web-5d9c7b", "rs-uid", rejectedMessage)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{
				downstreamLiveOnly: append(append([]*unstructured.Unstructured(nil), tc.downstream...), tc.liveOnly...),
				namespaces:         []*corev1.Namespace{ownedNamespace(t)},
			})
			env.acceptWorkloadTypes()
			env.recorder.IncludeObject = true
			for _, o := range tc.upstream {
				env.addWorkload(t, env.upstreamCaches, o)
			}
			for _, o := range tc.downstream {
				env.addWorkload(t, env.downstreamCaches, o)
			}
			env.forward(t, tc.events...)
			events := env.events()
			if len(events) != len(tc.want) {
				t.Fatalf("got Events %q, want PodsRejected on %v", events, tc.want)
			}
			for i, e := range events {
				if !strings.HasPrefix(e, "Warning PodsRejected The physical cluster of SyncTarget "+testSyncTargetName+" ") ||
					!strings.Contains(e, "(FailedCreate)") || !strings.HasSuffix(e, "involvedObject{kind="+tc.want[i]+",apiVersion="+tc.upstream[0].GetAPIVersion()+"}") {
					t.Errorf("Event %q, want a Warning PodsRejected on the upstream %s naming the SyncTarget and the downstream reason", e, tc.want[i])
				}
			}
		})
	}
}

// addWorkload adds o to the cache of its kind.
func (env *testEnv) addWorkload(t *testing.T, caches map[schema.GroupVersionResource]cache.Indexer, o *unstructured.Unstructured) {
	t.Helper()
	for gvr, gvk := range workloadKinds {
		if gvk.Kind == o.GetKind() {
			if err := caches[gvr].Add(o.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no cache for kind %s", o.GetKind())
}

// The message names the downstream object and carries the downstream reason and message.
func TestPodRejectionsMessage(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	sts := upstreamWorkload(statefulSetsGVR, "db")
	env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}})
	env.acceptWorkloadTypes()
	env.addWorkload(t, env.upstreamCaches, sts)
	env.addWorkload(t, env.downstreamCaches, syncedCopy(t, sts))
	env.forward(t, seen{event: failedCreate("db.1", workloadKinds[statefulSetsGVR], dsNS, "db", "downstream-uid-db", stsRejected)})
	want := []string{"Warning PodsRejected The physical cluster of SyncTarget east does not create the pods of StatefulSet db (FailedCreate): " + stsRejected}
	if got := env.events(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("got Events %q, want %q", got, want)
	}
}

// Through the informer: an Event listed when the forwarding starts is not forwarded (an
// earlier run did, or it began while none ran); one that appears afterwards is.
func TestPodRejectionsSkipTheInitialList(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	sts, other := upstreamWorkload(statefulSetsGVR, "db"), upstreamWorkload(statefulSetsGVR, "cache")
	before := failedCreate("db.1", workloadKinds[statefulSetsGVR], dsNS, "db", "downstream-uid-db", stsRejected)
	env := newTestEnv(t, testObjects{
		namespaces:             []*corev1.Namespace{ownedNamespace(t)},
		downstreamKubeLiveOnly: []runtime.Object{before},
	})
	env.acceptWorkloadTypes()
	for _, o := range []*unstructured.Unstructured{sts, other} {
		env.addWorkload(t, env.upstreamCaches, o)
		env.addWorkload(t, env.downstreamCaches, syncedCopy(t, o))
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go env.rejections.run(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), env.rejections.events.HasSynced) {
		t.Fatal("the Event informer did not sync")
	}
	after := failedCreate("cache.1", workloadKinds[statefulSetsGVR], dsNS, "cache", "downstream-uid-cache",
		strings.ReplaceAll(stsRejected, "db", "cache"))
	if _, err := env.downstreamKube.CoreV1().Events(dsNS).Create(ctx, after, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		got = append(got, env.events()...)
		return len(got) > 0, nil
	}); err != nil {
		t.Fatalf("no PodsRejected Event for the Event created after the start: %v", err)
	}
	// Events reach the queue in the informer's order: the listed one would have come first.
	if len(got) != 1 || !strings.Contains(got[0], "StatefulSet cache ") {
		t.Errorf("got Events %q, want one PodsRejected for StatefulSet cache only", got)
	}
}

// Other tenants' and the cluster's own Events are not even queued.
func TestPodRejectionsQueueOnlyOurNamespaces(t *testing.T) {
	env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}})
	for _, ns := range []string{"kube-system", "tenant-of-another-syncer"} {
		env.rejections.observe(failedCreate("db.1", workloadKinds[statefulSetsGVR], ns, "db", types.UID("uid-db-"+ns), stsRejected), false)
	}
	if keys := env.rejections.queue.Drain(); len(keys) != 0 {
		t.Errorf("queued %v, want nothing from namespaces that are not ours", keys)
	}
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	env.rejections.observe(failedCreate("db.1", workloadKinds[statefulSetsGVR], dsNS, "db", "downstream-uid-db", stsRejected), false)
	if keys := env.rejections.queue.Drain(); len(keys) != 1 {
		t.Errorf("queued %v, want the Event of our namespace", keys)
	}
}
