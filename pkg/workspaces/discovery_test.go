package workspaces

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/wildcard"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	tmcfake "github.com/tmc-dev/tmc/sdk/client/clientset/versioned/fake"
	tmcinformers "github.com/tmc-dev/tmc/sdk/client/informers/externalversions"
)

// fakeWorkspace is a workspace on fake clients, its informers not started.
func fakeWorkspace(path string) *Workspace {
	kube := kubefake.NewClientset()
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	tmc := tmcfake.NewSimpleClientset()
	return &Workspace{
		Path: path, Kube: kube, Dynamic: dyn, TMC: tmc,
		KubeInformers:    informers.NewSharedInformerFactory(kube, 0),
		DynamicInformers: dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		TMCInformers:     tmcinformers.NewSharedInformerFactory(tmc, 0),
	}
}

// recordingBinder records the workspaces bound to it; failures fail that many first calls.
type recordingBinder struct {
	mu       sync.Mutex
	bound    []string
	failures int
}

func (b *recordingBinder) AddWorkloadWorkspace(ws *Workspace) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures > 0 {
		b.failures--
		return errors.New("injected failure")
	}
	b.bound = append(b.bound, ws.Path)
	return nil
}

func (b *recordingBinder) boundPaths() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bound)
}

func placement(cluster, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("scheduling.kcp.io/v1alpha1")
	u.SetKind("Placement")
	u.SetName(name)
	u.SetResourceVersion("1")
	u.SetAnnotations(map[string]string{logicalcluster.AnnotationKey: cluster})
	return u
}

// fakePlacements lists initial and then serves the events sent on the returned watcher.
func fakePlacements(initial ...*unstructured.Unstructured) (cache.ListerWatcher, *watch.FakeWatcher) {
	w := watch.NewFake()
	return &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			list := &unstructured.UnstructuredList{}
			list.SetResourceVersion("1")
			for _, p := range initial {
				list.Items = append(list.Items, *p.DeepCopy())
			}
			return list, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return w, nil },
	}, w
}

func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestDiscoveryBindsWorkspacesWithPlacements: the workspaces with a Placement at start are
// bound before Start returns, one whose first Placement appears later is bound at runtime,
// each once, under its logical-cluster name; a deleted Placement unbinds nothing, and a
// failed bind is retried.
func TestDiscoveryBindsWorkspacesWithPlacements(t *testing.T) {
	lw, watcher := fakePlacements(placement("c1", "web"))
	set := &Set{Location: map[string]*Workspace{"root:locations": fakeWorkspace("root:locations")}}
	binder := &recordingBinder{}
	d, err := newDiscovery(wildcard.NewInformer(lw, &unstructured.Unstructured{}, 0), set,
		func(cluster string) (*Workspace, error) { return fakeWorkspace(cluster), nil }, []Binder{binder})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := set.WorkloadPaths(); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("after Start, workload workspaces %v, want [c1]", got)
	}

	binder.mu.Lock()
	binder.failures = 1
	binder.mu.Unlock()
	watcher.Add(placement("c2", "api"))
	watcher.Add(placement("c1", "second"))
	pollUntil(t, "c2 to be bound", func() bool { return set.WorkloadWorkspace("c2") != nil })
	watcher.Delete(placement("c2", "api"))
	watcher.Add(placement("c3", "db"))
	pollUntil(t, "c3 to be bound", func() bool { return set.WorkloadWorkspace("c3") != nil })

	if got := set.WorkloadPaths(); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Errorf("workload workspaces %v, want [c1 c2 c3] (a deleted Placement unbinds nothing)", got)
	}
	if got := binder.boundPaths(); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Errorf("binder saw %v, want each workspace once", got)
	}
	if ws := set.WorkloadWorkspace("c2"); ws.Path != "c2" {
		t.Errorf("bound workspace path %q, want its logical-cluster name", ws.Path)
	}
}

// TestSetGrowsConcurrently: AddWorkload from many goroutines, with readers beside them,
// adds each path once (run with -race).
func TestSetGrowsConcurrently(t *testing.T) {
	set := &Set{Location: map[string]*Workspace{"loc": fakeWorkspace("loc")}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	added := map[string]int{}
	for i := range 40 {
		path := fmt.Sprintf("ws-%d", i%10)
		wg.Go(func() {
			if _, ok := set.AddWorkload(&Workspace{Path: path}); ok {
				mu.Lock()
				added[path]++
				mu.Unlock()
			}
			_ = set.All()
			_ = set.WorkloadPaths()
		})
	}
	wg.Wait()
	if len(added) != 10 {
		t.Errorf("added %d paths, want 10", len(added))
	}
	for p, n := range added {
		if n != 1 {
			t.Errorf("%s added %d times, want once", p, n)
		}
	}
	if all := set.All(); len(all) != 11 {
		t.Errorf("All() has %d workspaces, want 11", len(all))
	}
	// A workload workspace of a location's path shares the location's clients.
	loc := set.Location["loc"]
	if got, ok := set.AddWorkload(&Workspace{Path: "loc"}); !ok || got != loc {
		t.Errorf("AddWorkload(loc) = %p, %v; want the location workspace %p", got, ok, loc)
	}
}
