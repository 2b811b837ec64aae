package syncer

import (
	"context"
	"sort"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func viewNamespace(cluster, name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
		Annotations: map[string]string{logicalcluster.AnnotationKey: cluster}}}
}

func viewConfigMap(cluster, ns, name string) *unstructured.Unstructured {
	cm := upstreamConfigMap(name)
	cm.SetNamespace(ns)
	cm.SetAnnotations(map[string]string{logicalcluster.AnnotationKey: cluster})
	return cm
}

// specKeys records the spec keys queued by the views.
type specKeys struct {
	mu   sync.Mutex
	keys []string
}

func (s *specKeys) add(k specKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k.workspace+"|"+k.upstreamNamespace+"/"+k.name)
}

func (s *specKeys) distinct() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, k := range s.keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// A syncer view's workspaces are the logical clusters with a namespace placed on the target;
// a workspace's events reach the engine only once it has a view, which replays its cached
// objects as a new informer would (and not under the caller's lock); one informer per type
// serves every workspace and stops with its last view.
func TestSyncerViews(t *testing.T) {
	placed := map[string]string{testStateKey: workloadv1alpha1.ResourceStateSync}
	kube := kubefake.NewClientset(
		viewNamespace("c1", "shop", placed),
		// The fake tracker keys namespaces by name alone: c2's has another name.
		viewNamespace("c2", "store", placed),
		viewNamespace("c3", "unplaced", nil),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "shop",
			Annotations: map[string]string{logicalcluster.AnnotationKey: "c1"}}, Data: map[string]string{"ca.crt": "c1's CA"}},
	)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{configMapsGVR: "ConfigMapList"},
		viewConfigMap("c1", "shop", "a"), viewConfigMap("c2", "store", "a"), viewConfigMap("c2", "store", "b"))
	views := newSyncerViews(&rest.Config{}, testStKey, 0)
	views.newClients = func(*rest.Config) (dynamic.Interface, kubernetes.Interface, error) { return dyn, kube, nil }
	keys := &specKeys{}
	// The engine holds its lock while it asks for views; the receivers of the events take it.
	var engineLock sync.Mutex
	views.specChanged = func(k specKey) { engineLock.Lock(); defer engineLock.Unlock(); keys.add(k) }
	var nsMu sync.Mutex
	var nsChanged []string
	views.namespaceChanged = func(ws, ns string) {
		engineLock.Lock()
		defer engineLock.Unlock()
		nsMu.Lock()
		nsChanged = append(nsChanged, ws+"|"+ns)
		nsMu.Unlock()
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	defer views.stop()
	if err := views.setURLs(ctx, []string{"https://vw.invalid/services/syncer/lc/east/uid"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the namespace cache", func() bool { _, synced := views.workspaces(); return synced })
	if ws, _ := views.workspaces(); len(ws) != 2 || ws[0] != "c1" || ws[1] != "c2" {
		t.Fatalf("workspaces = %v, want the two with a placed namespace", ws)
	}
	if cfg, err := views.config("c2"); err != nil || cfg.Host != "https://vw.invalid/services/syncer/lc/east/uid/clusters/c2" {
		t.Fatalf("config of c2 = %v, %v", cfg, err)
	}
	if _, err := views.config("c3"); err == nil {
		t.Error("a workspace without a placed namespace got a config")
	}

	engineLock.Lock()
	h1, err := views.typeView(ctx, "c1", configMapsGVR)
	engineLock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c1's objects", func() bool { return len(keys.distinct()) == 1 })
	if got := keys.distinct(); got[0] != "c1|shop/a" {
		t.Fatalf("queued %v, want only c1's object", got)
	}
	if obj, err := h1.lister.ByNamespace("shop").Get("a"); err != nil || obj.(*unstructured.Unstructured).GetAnnotations()[logicalcluster.AnnotationKey] != "c1" {
		t.Fatalf("c1's lister returned %v, %v", obj, err)
	}
	if list, _ := h1.lister.ByNamespace("store").List(labels.Everything()); len(list) != 0 {
		t.Errorf("c1's lister returned %d objects of c2", len(list))
	}
	engineLock.Lock()
	h2, err := views.typeView(ctx, "c2", configMapsGVR)
	engineLock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c2's objects", func() bool { return len(keys.distinct()) == 3 })
	if got := views.typeInformers(); got != 1 {
		t.Errorf("%d informers for one type in two workspaces, want 1", got)
	}
	h1.stop()
	if got := views.typeInformers(); got != 1 {
		t.Errorf("the informer stopped while c2 still views it (%d running)", got)
	}
	h2.stop()
	if got := views.typeInformers(); got != 0 {
		t.Errorf("%d informers after the last view stopped, want 0", got)
	}

	// A namespace view replays the namespaces that are not placed (none here): a namespace
	// that stops being placed is reported for c1 only once c1 has a view.
	engineLock.Lock()
	nsView, ok := views.namespaceView("c1")
	engineLock.Unlock()
	if !ok || !nsView.hasSynced() {
		t.Fatal("no synced namespace view for c1")
	}
	unplaced := viewNamespace("c1", "shop", map[string]string{testStateKey: workloadv1alpha1.ResourceStateSync})
	unplaced.Annotations[workloadv1alpha1.DeletionAnnotation(testStKey)] = "2026-12-01T00:00:00Z"
	if _, err := kube.CoreV1().Namespaces().Update(ctx, unplaced, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the namespace change", func() bool { nsMu.Lock(); defer nsMu.Unlock(); return len(nsChanged) > 0 })
	nsMu.Lock()
	if nsChanged[0] != "c1|shop" {
		t.Errorf("namespace changes %v, want c1|shop", nsChanged)
	}
	nsMu.Unlock()

	// The root CA ConfigMaps of a workspace reach the hub CA copy once it has a view.
	var caMu sync.Mutex
	var caChanged []string
	views.rootCAChanged = func(ws, ns string) {
		engineLock.Lock()
		defer engineLock.Unlock()
		caMu.Lock()
		caChanged = append(caChanged, ws+"|"+ns)
		caMu.Unlock()
	}
	engineLock.Lock()
	caView, ok := views.rootCAView("c1")
	engineLock.Unlock()
	if !ok {
		t.Fatal("no root CA view for c1")
	}
	waitFor(t, "the root CA replay", func() bool { caMu.Lock(); defer caMu.Unlock(); return len(caChanged) > 0 })
	caMu.Lock()
	if caChanged[0] != "c1|shop" {
		t.Errorf("root CA changes %v, want c1|shop", caChanged)
	}
	caMu.Unlock()
	if obj, err := caView.lister.ByNamespace("shop").Get("kube-root-ca.crt"); err != nil || obj.(*corev1.ConfigMap).Data["ca.crt"] != "c1's CA" {
		t.Errorf("c1's root CA = %v, %v", obj, err)
	}

	// A view URL no longer listed stops; its workspaces leave the list.
	if err := views.setURLs(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ws, _ := views.workspaces(); len(ws) != 0 {
		t.Errorf("workspaces after the view went: %v", ws)
	}
}
