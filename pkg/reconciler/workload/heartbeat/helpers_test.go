package heartbeat

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

const testWorkspace = "root:locations"

// t0 is a whole second, as every time is once it went through the API server.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// appliedStatus is one server-side apply the controller sent.
type appliedStatus struct {
	name         string
	subresource  string
	patchType    types.PatchType
	fieldManager string
	force        bool
	at           time.Time
	body         map[string]any
	conditions   []metav1.Condition
}

// fixture is a heartbeat controller on fake clients: the SyncTarget cache is filled
// directly (or by a started informer), applies are recorded by a reactor on the dynamic
// client, Events go to a FakeRecorder.
type fixture struct {
	t         *testing.T
	c         *Controller
	clock     *testingclock.FakeClock
	tmcClient *tmcfake.Clientset
	dynamic   *dynamicfake.FakeDynamicClient
	recorder  *record.FakeRecorder
	metrics   *tmc.TMCMetrics
	ws        *workspaces.Workspace
	indexer   cache.Indexer
	// requeues records the delays the queue requeues keys with.
	requeues *recordingQueue

	mu       sync.Mutex
	applies  []appliedStatus
	applyErr error
	// persist makes the reactor write the applied conditions into the typed fake, as the
	// API server would, so that a started informer sees them.
	persist bool
	rv      int
}

func newFixture(t *testing.T, threshold time.Duration, objs ...*workloadv1alpha1.SyncTarget) *fixture {
	t.Helper()
	runtimeObjs := make([]runtime.Object, 0, len(objs))
	for _, o := range objs {
		runtimeObjs = append(runtimeObjs, o)
	}
	f := &fixture{
		t:         t,
		clock:     testingclock.NewFakeClock(t0),
		tmcClient: tmcfake.NewSimpleClientset(runtimeObjs...),
		dynamic:   dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()),
		recorder:  record.NewFakeRecorder(100),
		metrics:   tmc.NewTMCMetrics("test"),
		rv:        1000,
	}
	f.dynamic.PrependReactor("patch", "synctargets", f.reactPatch)
	ws := &workspaces.Workspace{
		Path:         testWorkspace,
		Kube:         kubefake.NewClientset(),
		Dynamic:      f.dynamic,
		TMC:          f.tmcClient,
		TMCInformers: tmcinformers.NewSharedInformerFactory(f.tmcClient, 0),
	}
	f.requeues = &recordingQueue{}
	c, err := newController(ws, threshold, f.clock, f.metrics, f.requeues.observe)
	if err != nil {
		t.Fatalf("NewController: %v", err)
	}
	c.recorder = f.recorder
	f.c = c
	f.ws = ws
	f.indexer = ws.TMCInformers.Workload().V1alpha1().SyncTargets().Informer().GetIndexer()
	t.Cleanup(c.queue.ShutDown)
	for _, o := range objs {
		f.setCached(o)
	}
	return f
}

func (f *fixture) reactPatch(action clienttesting.Action) (bool, runtime.Object, error) {
	patch := action.(clienttesting.PatchActionImpl)
	body := map[string]any{}
	if err := json.Unmarshal(patch.Patch, &body); err != nil {
		f.t.Errorf("apply body is not JSON: %v", err)
	}
	var parsed struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(patch.Patch, &parsed); err != nil {
		f.t.Errorf("apply body does not parse: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return true, nil, f.applyErr
	}
	force := patch.PatchOptions.Force != nil && *patch.PatchOptions.Force
	f.applies = append(f.applies, appliedStatus{
		name: patch.Name, subresource: patch.Subresource, patchType: patch.PatchType,
		fieldManager: patch.PatchOptions.FieldManager, force: force, at: f.clock.Now(),
		body: body, conditions: parsed.Status.Conditions,
	})
	if f.persist {
		obj, err := f.tmcClient.Tracker().Get(syncTargetsGVR, "", patch.Name)
		if err != nil {
			return true, nil, err
		}
		st := obj.(*workloadv1alpha1.SyncTarget).DeepCopy()
		for _, c := range parsed.Status.Conditions {
			meta.SetStatusCondition(&st.Status.Conditions, c)
			// SetStatusCondition keeps the old time when the status is unchanged, as
			// the apply of a whole list item would not; copy it verbatim.
			meta.FindStatusCondition(st.Status.Conditions, c.Type).LastTransitionTime = c.LastTransitionTime
		}
		f.rv++
		st.ResourceVersion = strconv.Itoa(f.rv)
		if err := f.tmcClient.Tracker().Update(syncTargetsGVR, st, ""); err != nil {
			return true, nil, err
		}
	}
	return true, nil, nil
}

// setCached puts st into the controller's cache, as the informer would.
func (f *fixture) setCached(st *workloadv1alpha1.SyncTarget) {
	f.t.Helper()
	if err := f.indexer.Update(st); err != nil {
		f.t.Fatalf("failed to cache SyncTarget: %v", err)
	}
}

func (f *fixture) deleteCached(st *workloadv1alpha1.SyncTarget) {
	f.t.Helper()
	if err := f.indexer.Delete(st); err != nil {
		f.t.Fatalf("failed to delete SyncTarget from cache: %v", err)
	}
}

// applyToCache copies the last apply's conditions into the cached st with a new
// resourceVersion, as the informer would after the write.
func (f *fixture) applyToCache(st *workloadv1alpha1.SyncTarget) *workloadv1alpha1.SyncTarget {
	f.t.Helper()
	last := f.lastApply()
	if last == nil {
		f.t.Fatalf("no apply to copy into the cache")
	}
	updated := st.DeepCopy()
	for _, c := range last.conditions {
		meta.RemoveStatusCondition(&updated.Status.Conditions, c.Type)
		updated.Status.Conditions = append(updated.Status.Conditions, c)
	}
	f.mu.Lock()
	f.rv++
	updated.ResourceVersion = strconv.Itoa(f.rv)
	f.mu.Unlock()
	f.setCached(updated)
	return updated
}

func (f *fixture) appliesSnapshot() []appliedStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]appliedStatus(nil), f.applies...)
}

func (f *fixture) lastApply() *appliedStatus {
	applies := f.appliesSnapshot()
	if len(applies) == 0 {
		return nil
	}
	return &applies[len(applies)-1]
}

func (f *fixture) setApplyErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyErr = err
}

// events drains the Events recorded so far.
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

// syncTarget builds a SyncTarget; heartbeat nil means never seen.
func syncTarget(name string, heartbeat *time.Time, conds ...metav1.Condition) *workloadv1alpha1.SyncTarget {
	st := &workloadv1alpha1.SyncTarget{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1"},
	}
	if heartbeat != nil {
		ts := metav1.NewTime(*heartbeat)
		st.Status.LastSyncerHeartbeatTime = &ts
	}
	st.Status.Conditions = conds
	return st
}

func cond(t string, status metav1.ConditionStatus, reason string, ltt time.Time) metav1.Condition {
	return metav1.Condition{Type: t, Status: status, Reason: reason, LastTransitionTime: metav1.NewTime(ltt)}
}

func ptrTime(t time.Time) *time.Time { return &t }

func notFound(name string) error {
	return apierrors.NewNotFound(workloadv1alpha1.Resource("synctargets"), name)
}
