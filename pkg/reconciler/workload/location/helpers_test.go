package location

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	schedulingv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/scheduling/v1alpha1"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

const testWorkspace = "root:locations"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a Location controller on the sdk fake clientset; its caches are filled
// directly (or by started informers) and Events go to a FakeRecorder.
type fixture struct {
	t                 *testing.T
	c                 *Controller
	clock             *testingclock.FakePassiveClock
	tmcClient         *tmcfake.Clientset
	ws                *workspaces.Workspace
	recorder          *record.FakeRecorder
	metrics           *tmc.TMCMetrics
	locationIndexer   cache.Indexer
	syncTargetIndexer cache.Indexer
}

func newFixture(t *testing.T, locations []*schedulingv1alpha1.Location, targets []*workloadv1alpha1.SyncTarget) *fixture {
	t.Helper()
	var objs []runtime.Object
	for _, l := range locations {
		objs = append(objs, l)
	}
	for _, st := range targets {
		objs = append(objs, st)
	}
	tmcClient := tmcfake.NewSimpleClientset(objs...)
	ws := &workspaces.Workspace{
		Path:         testWorkspace,
		Kube:         kubefake.NewClientset(),
		TMC:          tmcClient,
		TMCInformers: tmcinformers.NewSharedInformerFactory(tmcClient, 0),
	}
	m := tmc.NewTMCMetrics("test")
	c, err := NewController(ws, m)
	if err != nil {
		t.Fatalf("NewController: %v", err)
	}
	t.Cleanup(c.queue.ShutDown)
	f := &fixture{
		t:                 t,
		c:                 c,
		clock:             testingclock.NewFakePassiveClock(t0),
		tmcClient:         tmcClient,
		ws:                ws,
		recorder:          record.NewFakeRecorder(100),
		metrics:           m,
		locationIndexer:   ws.TMCInformers.Scheduling().V1alpha1().Locations().Informer().GetIndexer(),
		syncTargetIndexer: ws.TMCInformers.Workload().V1alpha1().SyncTargets().Informer().GetIndexer(),
	}
	c.clock = f.clock
	c.recorder = f.recorder
	for _, l := range locations {
		if err := f.locationIndexer.Add(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range targets {
		if err := f.syncTargetIndexer.Add(st); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// statusUpdates returns the Locations written with UpdateStatus.
func (f *fixture) statusUpdates() []*schedulingv1alpha1.Location {
	var out []*schedulingv1alpha1.Location
	for _, a := range f.tmcClient.Actions() {
		u, ok := a.(clienttesting.UpdateAction)
		if !ok || a.GetVerb() != "update" || a.GetResource().Resource != "locations" || a.GetSubresource() != "status" {
			continue
		}
		out = append(out, u.GetObject().(*schedulingv1alpha1.Location))
	}
	return out
}

// writes counts every write the controller sent.
func (f *fixture) writes() int {
	n := 0
	for _, a := range f.tmcClient.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			n++
		}
	}
	return n
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// location builds a Location; a nil selector selects all.
func location(name string, selector *metav1.LabelSelector, instances, available *int32) *schedulingv1alpha1.Location {
	return &schedulingv1alpha1.Location{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: schedulingv1alpha1.LocationSpec{
			Resource:         &schedulingv1alpha1.GroupVersionResource{Group: workloadv1alpha1.GroupName, Version: "v1alpha1", Resource: "synctargets"},
			InstanceSelector: selector,
		},
		Status: schedulingv1alpha1.LocationStatus{Instances: instances, AvailableInstances: available},
	}
}

type stOption func(*workloadv1alpha1.SyncTarget)

func ready(status metav1.ConditionStatus) stOption {
	return func(st *workloadv1alpha1.SyncTarget) {
		st.Status.Conditions = append(st.Status.Conditions, metav1.Condition{Type: workloadv1alpha1.SyncTargetReady, Status: status, Reason: "Test"})
	}
}

func withLabels(kv ...string) stOption {
	return func(st *workloadv1alpha1.SyncTarget) {
		if st.Labels == nil {
			st.Labels = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			st.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withCells(kv ...string) stOption {
	return func(st *workloadv1alpha1.SyncTarget) {
		if st.Spec.Cells == nil {
			st.Spec.Cells = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			st.Spec.Cells[kv[i]] = kv[i+1]
		}
	}
}

func unschedulable(st *workloadv1alpha1.SyncTarget) { st.Spec.Unschedulable = true }

func evictAfter(at time.Time) stOption {
	return func(st *workloadv1alpha1.SyncTarget) { st.Spec.EvictAfter = &metav1.Time{Time: at} }
}

func syncTarget(name string, opts ...stOption) *workloadv1alpha1.SyncTarget {
	st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"}}
	for _, o := range opts {
		o(st)
	}
	return st
}

func selector(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func i32(v int32) *int32 { return ptr.To(v) }
