package wildcard

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

func configMap(cluster, ns, name, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: ns, ResourceVersion: rv,
		Annotations: map[string]string{logicalcluster.AnnotationKey: cluster},
		Labels:      map[string]string{"app": cluster},
	}}
}

// fakeSource serves one list, then the watches the test drives.
type fakeSource struct {
	mu      sync.Mutex
	list    []corev1.ConfigMap
	watches chan *watch.FakeWatcher
}

func (s *fakeSource) lw() cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return &corev1.ConfigMapList{ListMeta: metav1.ListMeta{ResourceVersion: "10"}, Items: append([]corev1.ConfigMap(nil), s.list...)}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			w := watch.NewFake()
			s.watches <- w
			return w, nil
		},
	}
}

type recorded struct {
	mu      sync.Mutex
	adds    []string
	deletes []string
}

func (r *recorded) handler() cache.ResourceEventHandler {
	key := func(obj any) string { k, _ := Key(obj); return k }
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { r.mu.Lock(); r.adds = append(r.adds, key(obj)); r.mu.Unlock() },
		DeleteFunc: func(obj any) {
			r.mu.Lock()
			r.deletes = append(r.deletes, key(obj))
			r.mu.Unlock()
		},
	}
}

func (r *recorded) snapshot() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.adds...), append([]string(nil), r.deletes...)
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Objects of two logical clusters with the same namespace and name are two objects: each
// cluster's lister sees its own, deletions remove only the one of their cluster, and a
// relist without an object deletes exactly that one.
func TestInformerKeepsClustersApart(t *testing.T) {
	src := &fakeSource{list: []corev1.ConfigMap{*configMap("c1", "default", "cm", "1"), *configMap("c2", "default", "cm", "2")}, watches: make(chan *watch.FakeWatcher, 4)}
	inf := NewInformer(src.lw(), &corev1.ConfigMap{}, 0)
	rec := &recorded{}
	if err := inf.AddEventHandler(rec.handler()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go inf.Run(ctx)
	poll(t, "sync", inf.HasSynced)
	if err := inf.AddEventHandler(rec.handler()); err == nil {
		t.Error("a handler was accepted after Run")
	}
	if got := inf.Clusters(); len(got) != 2 || got[0] != "c1" || got[1] != "c2" {
		t.Fatalf("clusters = %v", got)
	}
	for _, c := range []string{"c1", "c2"} {
		obj, err := inf.Lister(c).ByNamespace("default").Get("cm")
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if got := ClusterOf(obj.(metav1.Object)); got != c {
			t.Errorf("lister of %s returned the object of %s", c, got)
		}
		list, err := inf.Lister(c).List(labels.SelectorFromSet(labels.Set{"app": c}))
		if err != nil || len(list) != 1 {
			t.Errorf("list of %s = %d objects, %v", c, len(list), err)
		}
		if list, _ := inf.Lister(c).List(labels.SelectorFromSet(labels.Set{"app": "other"})); len(list) != 0 {
			t.Errorf("selector ignored: %d objects", len(list))
		}
	}
	if _, err := inf.Lister("c3").ByNamespace("default").Get("cm"); err == nil {
		t.Error("an unknown cluster's lister found an object")
	}

	w := <-src.watches
	w.Add(configMap("c3", "other", "cm", "11"))
	w.Delete(configMap("c1", "default", "cm", "12"))
	poll(t, "watch events", func() bool { _, d := rec.snapshot(); return len(d) == 1 })
	if _, err := inf.Lister("c2").ByNamespace("default").Get("cm"); err != nil {
		t.Errorf("deleting c1's object removed c2's: %v", err)
	}
	if _, err := inf.Lister("c1").ByNamespace("default").Get("cm"); err == nil {
		t.Error("c1's object is still cached after its deletion")
	}
	if got := inf.Clusters(); len(got) != 2 || got[0] != "c2" || got[1] != "c3" {
		t.Fatalf("clusters after the watch = %v", got)
	}

	// The watch expires; the relist no longer has c2's object: exactly it is deleted.
	src.mu.Lock()
	src.list = []corev1.ConfigMap{*configMap("c3", "other", "cm", "11")}
	src.mu.Unlock()
	w.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old"})
	poll(t, "relist deletion", func() bool { _, d := rec.snapshot(); return len(d) == 2 })
	adds, deletes := rec.snapshot()
	if deletes[0] != "c1|default/cm" || deletes[1] != "c2|default/cm" {
		t.Errorf("deletes = %v", deletes)
	}
	if len(adds) != 3 {
		t.Errorf("adds = %v, want the two listed objects and the watched one", adds)
	}
}

func TestConfigAddressesTheWildcard(t *testing.T) {
	if got := Config(&rest.Config{Host: "https://127.0.0.1:6443/"}).Host; got != "https://127.0.0.1:6443/clusters/*" {
		t.Errorf("host = %q", got)
	}
}
