package placement

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tmc-dev/tmc/pkg/workspaces"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

const (
	locWS = "root:locations"
	wsA   = "root:team-a"
	wsB   = "root:team-b"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fixture is a controller on fake clients whose informers are never started: sync copies
// the clients' contents into the informer stores, so every step is deterministic.
type fixture struct {
	t        *testing.T
	clock    *clocktesting.FakeClock
	set      *workspaces.Set
	kube     map[string]*kubefake.Clientset
	tmc      map[string]*tmcfake.Clientset
	dyn      map[string]*dynamicfake.FakeDynamicClient
	recorder map[string]*record.FakeRecorder
	opts     Options
	ctrl     *Controller
}

func listKinds() map[schema.GroupVersionResource]string {
	out := map[schema.GroupVersionResource]string{}
	for _, gvr := range watchedObjectTypes {
		kind := strings.TrimSuffix(gvr.Resource, "s")
		out[gvr] = kind + "List"
	}
	return out
}

func newWorkspace(path string) (*workspaces.Workspace, *kubefake.Clientset, *tmcfake.Clientset, *dynamicfake.FakeDynamicClient) {
	kube := kubefake.NewClientset()
	tmc := tmcfake.NewSimpleClientset()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds())
	return &workspaces.Workspace{
		Path:             path,
		Kube:             kube,
		Dynamic:          dyn,
		TMC:              tmc,
		KubeInformers:    informers.NewSharedInformerFactory(kube, 0),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		TMCInformers:     tmcinformers.NewSharedInformerFactory(tmc, 0),
	}, kube, tmc, dyn
}

// newFixture builds a location workspace and two workload workspaces; mutate adjusts the
// options before the controller is built.
func newFixture(t *testing.T, mutate ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		clock:    clocktesting.NewFakeClock(testNow),
		set:      &workspaces.Set{Location: map[string]*workspaces.Workspace{}, Workload: map[string]*workspaces.Workspace{}},
		kube:     map[string]*kubefake.Clientset{},
		tmc:      map[string]*tmcfake.Clientset{},
		dyn:      map[string]*dynamicfake.FakeDynamicClient{},
		recorder: map[string]*record.FakeRecorder{},
	}
	for _, path := range []string{locWS, wsA, wsB} {
		ws, kube, tmc, dyn := newWorkspace(path)
		f.kube[path], f.tmc[path], f.dyn[path] = kube, tmc, dyn
		if path == locWS {
			f.set.Location[path] = ws
		} else {
			f.set.Workload[path] = ws
			f.recorder[path] = record.NewFakeRecorder(100)
		}
	}
	opts := Options{
		Clock:            f.clock,
		EventRecorderFor: func(path string) record.EventRecorder { return f.recorder[path] },
	}
	for _, m := range mutate {
		m(&opts)
	}
	f.opts = opts
	ctrl, err := NewController(f.set, opts)
	if err != nil {
		t.Fatalf("NewController: %v", err)
	}
	f.ctrl = ctrl
	return f
}

// restart builds a fresh controller (empty memory, new informers) on the same clients and
// options, and syncs it.
func (f *fixture) restart() {
	f.t.Helper()
	for _, ws := range f.set.All() {
		ws.KubeInformers = informers.NewSharedInformerFactory(ws.Kube, 0)
		ws.DynamicInformers = dynamicinformer.NewDynamicSharedInformerFactory(ws.Dynamic, 0)
		ws.TMCInformers = tmcinformers.NewSharedInformerFactory(ws.TMC, 0)
	}
	ctrl, err := NewController(f.set, f.opts)
	if err != nil {
		f.t.Fatalf("NewController: %v", err)
	}
	f.ctrl = ctrl
	f.sync()
}

// sync copies every object of the fake clients into the informer stores.
func (f *fixture) sync() {
	f.t.Helper()
	ctx := f.t.Context()
	for path, ws := range f.set.Location {
		locs, err := f.tmc[path].SchedulingV1alpha1().Locations().List(ctx, metav1.ListOptions{})
		must(f.t, err)
		replace(f.t, ws.TMCInformers.Scheduling().V1alpha1().Locations().Informer().GetIndexer().Replace, itemsOf(locs))
		sts, err := f.tmc[path].WorkloadV1alpha1().SyncTargets().List(ctx, metav1.ListOptions{})
		must(f.t, err)
		replace(f.t, ws.TMCInformers.Workload().V1alpha1().SyncTargets().Informer().GetIndexer().Replace, itemsOf(sts))
	}
	for path, ws := range f.set.Workload {
		pls, err := f.tmc[path].SchedulingV1alpha1().Placements().List(ctx, metav1.ListOptions{})
		must(f.t, err)
		replace(f.t, ws.TMCInformers.Scheduling().V1alpha1().Placements().Informer().GetIndexer().Replace, itemsOf(pls))
		nss, err := f.kube[path].CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		must(f.t, err)
		replace(f.t, ws.KubeInformers.Core().V1().Namespaces().Informer().GetIndexer().Replace, itemsOf(nss))
		for _, gvr := range watchedObjectTypes {
			list, err := f.dyn[path].Resource(gvr).List(ctx, metav1.ListOptions{})
			must(f.t, err)
			var items []any
			for i := range list.Items {
				items = append(items, &list.Items[i])
			}
			replace(f.t, ws.DynamicInformers.ForResource(gvr).Informer().GetIndexer().Replace, items)
		}
	}
}

func itemsOf(list runtime.Object) []any {
	objs, _ := meta.ExtractList(list)
	out := make([]any, 0, len(objs))
	for _, o := range objs {
		out = append(out, o)
	}
	return out
}

func replace(t *testing.T, fn func([]any, string) error, items []any) {
	t.Helper()
	must(t, fn(items, ""))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// reconcileNS reconciles a namespace without syncing the caches first or afterwards.
func (f *fixture) reconcileNS(ws, name string) time.Duration {
	f.t.Helper()
	d, err := f.ctrl.reconcileNamespace(f.t.Context(), queueKey{workspace: ws, name: name})
	if err != nil {
		f.t.Fatalf("reconcile namespace %s|%s: %v", ws, name, err)
	}
	return d
}

// step syncs the caches, reconciles the namespace, and syncs again.
func (f *fixture) step(ws, name string) time.Duration {
	f.t.Helper()
	f.sync()
	d := f.reconcileNS(ws, name)
	f.sync()
	return d
}

// reconcilePlacement syncs, reconciles a Placement's status and returns it.
func (f *fixture) reconcilePlacement(ws, name string) (*schedulingv1alpha1.Placement, time.Duration) {
	f.t.Helper()
	f.sync()
	d, err := f.ctrl.reconcilePlacement(f.t.Context(), queueKey{workspace: ws, name: name})
	if err != nil {
		f.t.Fatalf("reconcile placement %s|%s: %v", ws, name, err)
	}
	p, err := f.tmc[ws].SchedulingV1alpha1().Placements().Get(f.t.Context(), name, metav1.GetOptions{})
	must(f.t, err)
	f.sync()
	return p, d
}

type stOpt func(*workloadv1alpha1.SyncTarget)

func notReadySince(t time.Time) stOpt {
	return func(st *workloadv1alpha1.SyncTarget) {
		meta.SetStatusCondition(&st.Status.Conditions, metav1.Condition{Type: workloadv1alpha1.SyncTargetReady,
			Status: metav1.ConditionFalse, Reason: "ErrorHeartbeat", LastTransitionTime: metav1.NewTime(t)})
	}
}

func cordoned(st *workloadv1alpha1.SyncTarget) { st.Spec.Unschedulable = true }

func evictAfter(t time.Time) stOpt {
	return func(st *workloadv1alpha1.SyncTarget) { at := metav1.NewTime(t); st.Spec.EvictAfter = &at }
}

func accepting(types ...string) stOpt {
	return func(st *workloadv1alpha1.SyncTarget) {
		st.Status.SyncedResources = nil
		for _, ty := range types {
			r, _ := workloadv1alpha1.ParseResourceToSync(ty)
			st.Status.SyncedResources = append(st.Status.SyncedResources, workloadv1alpha1.SyncedResource{
				ResourceToSync: r, Versions: []string{"v1"}, State: workloadv1alpha1.ResourceStateAccepted})
		}
	}
}

func withLabels(kv ...string) stOpt {
	return func(st *workloadv1alpha1.SyncTarget) { st.Labels = labelMap(kv...) }
}

func labelMap(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// syncTarget creates (or replaces) a Ready SyncTarget accepting the default types.
func (f *fixture) syncTarget(name string, opts ...stOpt) string {
	f.t.Helper()
	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(testNow.Add(-time.Hour))}}
	st.Status.Conditions = []metav1.Condition{{Type: workloadv1alpha1.SyncTargetReady, Status: metav1.ConditionTrue,
		Reason: "Ready", LastTransitionTime: metav1.NewTime(testNow.Add(-time.Hour))}}
	var all []string
	for _, r := range workloadv1alpha1.DefaultResources() {
		all = append(all, r.String())
	}
	accepting(all...)(st)
	for _, o := range opts {
		o(st)
	}
	client := f.tmc[locWS].WorkloadV1alpha1().SyncTargets()
	if _, err := client.Get(f.t.Context(), name, metav1.GetOptions{}); err == nil {
		_, err = client.Update(f.t.Context(), st, metav1.UpdateOptions{})
		must(f.t, err)
	} else {
		_, err = client.Create(f.t.Context(), st, metav1.CreateOptions{})
		must(f.t, err)
	}
	return workloadv1alpha1.ToSyncTargetKey(locWS, name)
}

func (f *fixture) deleteSyncTarget(name string) {
	must(f.t, f.tmc[locWS].WorkloadV1alpha1().SyncTargets().Delete(f.t.Context(), name, metav1.DeleteOptions{}))
}

func (f *fixture) location(name string, lbls map[string]string, instanceSelector *metav1.LabelSelector) {
	f.t.Helper()
	loc := &schedulingv1alpha1.Location{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls},
		Spec: schedulingv1alpha1.LocationSpec{InstanceSelector: instanceSelector}}
	_, err := f.tmc[locWS].SchedulingV1alpha1().Locations().Create(f.t.Context(), loc, metav1.CreateOptions{})
	must(f.t, err)
}

func (f *fixture) placement(ws, name string, nsSelector *metav1.LabelSelector, locSelectors ...metav1.LabelSelector) {
	f.t.Helper()
	p := &schedulingv1alpha1.Placement{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: schedulingv1alpha1.PlacementSpec{LocationWorkspace: locWS, NamespaceSelector: nsSelector, LocationSelectors: locSelectors}}
	_, err := f.tmc[ws].SchedulingV1alpha1().Placements().Create(f.t.Context(), p, metav1.CreateOptions{})
	must(f.t, err)
}

func (f *fixture) namespace(ws, name string, lbls map[string]string) {
	f.t.Helper()
	_, err := f.kube[ws].CoreV1().Namespaces().Create(f.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}, metav1.CreateOptions{})
	must(f.t, err)
}

func (f *fixture) ns(ws, name string) *corev1.Namespace {
	f.t.Helper()
	ns, err := f.kube[ws].CoreV1().Namespaces().Get(f.t.Context(), name, metav1.GetOptions{})
	must(f.t, err)
	return ns
}

// targetsOf returns the keys a namespace is labelled Sync for, sorted.
func (f *fixture) targetsOf(ws, name string) []string {
	var out []string
	for k, v := range f.ns(ws, name).Labels {
		if key, ok := workloadv1alpha1.SyncTargetKeyFromLabel(workloadv1alpha1.ClusterResourceStateLabelPrefix, k); ok && v == "Sync" {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// object creates or replaces a namespaced object of gvr.
func (f *fixture) object(ws string, gvr schema.GroupVersionResource, kind, namespace, name string, mutate func(*unstructured.Unstructured)) {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(gvr.GroupVersion().String())
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	if mutate != nil {
		mutate(u)
	}
	client := f.dyn[ws].Resource(gvr).Namespace(namespace)
	if _, err := client.Get(f.t.Context(), name, metav1.GetOptions{}); err == nil {
		_, err = client.Update(f.t.Context(), u, metav1.UpdateOptions{})
		must(f.t, err)
		return
	}
	_, err := client.Create(f.t.Context(), u, metav1.CreateOptions{})
	must(f.t, err)
}

// deployment creates or replaces a Deployment labelled Sync for keys, with replicas (nil:
// unset) and per-key ready replica counts in the status annotations.
func (f *fixture) deployment(ws, namespace, name string, replicas *int64, keys []string, ready map[string]int64) {
	f.t.Helper()
	f.object(ws, deploymentsGVR, "Deployment", namespace, name, func(u *unstructured.Unstructured) {
		lbls := map[string]string{}
		for _, k := range keys {
			lbls[workloadv1alpha1.ClusterResourceStateLabel(k)] = "Sync"
		}
		u.SetLabels(lbls)
		ann := map[string]string{}
		for k, n := range ready {
			b, _ := json.Marshal(map[string]any{"replicas": n, "readyReplicas": n})
			ann[workloadv1alpha1.StatusAnnotation(k)] = string(b)
		}
		u.SetAnnotations(ann)
		if replicas != nil {
			must(f.t, unstructured.SetNestedField(u.Object, *replicas, "spec", "replicas"))
		}
	})
}

func (f *fixture) events(ws string) []string {
	var out []string
	for {
		select {
		case e := <-f.recorder[ws].Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func nsSelector(kv ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: labelMap(kv...)}
}

func locSelector(kv ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchLabels: labelMap(kv...)}
}

func ptrInt64(v int64) *int64 { return &v }

func condition(p *schedulingv1alpha1.Placement, t string) *metav1.Condition {
	return meta.FindStatusCondition(p.Status.Conditions, t)
}
