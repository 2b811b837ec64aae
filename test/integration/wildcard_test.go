package integration

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// wildcardEvent is what a watch of /clusters/* delivered, or what a write is expected to
// produce on it.
type wildcardEvent struct {
	Type    watch.EventType
	Cluster string
	Name    string
	RV      int64
}

func wildcardClient(t *testing.T, env *localenv.Environment, user string) kubernetes.Interface {
	cfg := env.FrontProxy.BaseConfig(user)
	cfg.Host += logicalcluster.ClustersPrefix + "*"
	return kube(t, cfg)
}

// listThenWatch makes a reflector list and then watch instead of using watch-list.
type listThenWatch struct{ cache.ListerWatcher }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

func rvOf(t *testing.T, obj metav1.Object) int64 {
	t.Helper()
	rv, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", obj.GetResourceVersion(), err)
	}
	return rv
}

// Like a kcp shard's /clusters/*, the front proxy lists and watches a resource across every
// workspace: lists are one snapshot at one etcd revision, watches deliver every workspace's
// changes in revision order with the apiserver's selector semantics, and a client resuming
// from its last resourceVersion misses nothing and sees nothing twice.
func TestWildcardListAndWatch(t *testing.T) {
	ctx := t.Context()
	paths := []string{"root", wsA, wsB}
	env := localenv.StartForTest(t, localenv.Options{Workspaces: paths, Users: []string{"reader"}, NoWorkspaceControllers: true})
	admin := wildcardClient(t, env, localenv.AdminUser)
	clients := map[string]kubernetes.Interface{}
	for _, p := range paths {
		clients[p] = kube(t, env.Workspace(p).AdminConfig())
	}

	t.Run("an informer with a label selector sees every workspace", func(t *testing.T) {
		for _, p := range paths {
			for _, cm := range []*corev1.ConfigMap{
				{ObjectMeta: metav1.ObjectMeta{Name: "seen", Namespace: "default", Labels: map[string]string{"app": "informer"}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "unseen", Namespace: "default"}},
			} {
				if _, err := clients[p].CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Objects of different workspaces share namespace/name: like kcp's informers, the
		// cache is keyed by logical cluster too (a plain namespace/name store would keep one
		// "default/seen" of the three).
		lw := cache.NewFilteredListWatchFromClient(admin.CoreV1().RESTClient(), "configmaps", "", func(o *metav1.ListOptions) {
			o.LabelSelector = "app=informer"
		})
		store := cache.NewStore(func(obj any) (string, error) {
			m, err := meta.Accessor(obj)
			if err != nil {
				return "", err
			}
			return logicalcluster.NameFrom(m.GetAnnotations()) + "|" + m.GetNamespace() + "/" + m.GetName(), nil
		})
		informer := struct{ GetStore func() cache.Store }{GetStore: func() cache.Store { return store }}
		// List then watch, not watch-list: client-go's watch-list collects its initial events
		// in a namespace/name store of its own, which keeps one object of each name across
		// logical clusters (kcp's client-go fork is cluster-aware there; upstream's is not).
		reflector := cache.NewReflector(listThenWatch{lw}, &corev1.ConfigMap{}, store, 0)
		informerCtx, stop := context.WithCancel(ctx)
		defer stop()
		go reflector.RunWithContext(informerCtx)
		late := "root"
		poll(t, ctx, time.Minute, "the informer holds the labelled ConfigMap of every workspace", func(context.Context) (bool, error) {
			return len(informer.GetStore().List()) == len(paths), nil
		})
		// A later write in one workspace reaches the informer through the watch.
		cm, err := clients[late].CoreV1().ConfigMaps("default").Get(ctx, "unseen", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Labels = map[string]string{"app": "informer"}
		if _, err := clients[late].CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, time.Minute, "the relabelled ConfigMap reaches the informer", func(context.Context) (bool, error) {
			return len(informer.GetStore().List()) == len(paths)+1, nil
		})
		clusters := map[string]int{}
		for _, o := range informer.GetStore().List() {
			clusters[logicalcluster.NameFrom(o.(*corev1.ConfigMap).Annotations)]++
		}
		for _, p := range paths {
			want := 1
			if p == late {
				want = 2
			}
			if got := clusters[env.Workspace(p).Name]; got != want {
				t.Errorf("the informer holds %d ConfigMaps of %s (%s), want %d; by cluster: %v", got, p, env.Workspace(p).Name, want, clusters)
			}
		}
	})

	t.Run("a watch delivers concurrent writes in order, and a resumed one exactly the rest", func(t *testing.T) {
		testWildcardWatchOrder(t, env, admin, clients, paths)
	})

	t.Run("a list at revision R is the union of the workspaces at R", func(t *testing.T) {
		all, err := admin.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, p := range paths {
			l, err := clients[p].CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{ResourceVersion: all.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
			if err != nil {
				t.Fatal(err)
			}
			for _, cm := range l.Items {
				want[env.Workspace(p).Name+"/"+cm.Namespace+"/"+cm.Name+"@"+cm.ResourceVersion] = true
			}
		}
		// Writes after R do not change the list at R.
		for _, p := range paths {
			if _, err := clients[p].CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-r", Namespace: "default"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		atR, err := admin.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{ResourceVersion: all.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []*corev1.ConfigMapList{all, atR} {
			got := map[string]bool{}
			for _, cm := range l.Items {
				got[logicalcluster.NameFrom(cm.Annotations)+"/"+cm.Namespace+"/"+cm.Name+"@"+cm.ResourceVersion] = true
			}
			if l.ResourceVersion != all.ResourceVersion || fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
				t.Errorf("list at %s: %d items, want the %d of the workspaces at %s", l.ResourceVersion, len(got), len(want), all.ResourceVersion)
			}
		}
	})

	t.Run("a user without rights in every workspace is forbidden", func(t *testing.T) {
		reader := wildcardClient(t, env, "reader")
		objs := []runtime.Object{
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list", "watch"}}}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "read-configmaps"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "reader"}}},
		}
		// Rights in root only: not enough.
		if err := localenv.CreateObjects(ctx, clients["root"], objs...); err != nil {
			t.Fatal(err)
		}
		if _, err := reader.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list by a user with rights in root only: %v, want Forbidden", err)
		}
		if _, err := reader.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("watch by a user with rights in root only: %v, want Forbidden", err)
		}
		for _, p := range paths[1:] {
			if err := localenv.CreateObjects(ctx, clients[p], objs...); err != nil {
				t.Fatal(err)
			}
		}
		poll(t, ctx, time.Minute, "the user with rights everywhere may list", func(ctx context.Context) (bool, error) {
			_, err := reader.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
			return err == nil, nil
		})
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// testWildcardWatchOrder writes hundreds of ConfigMaps in every workspace concurrently
// while a watch of /clusters/* runs, stops it midway, resumes from its last
// resourceVersion, and checks that the two watches together delivered every write exactly
// once, in strictly increasing resourceVersion order, with relabelling as DELETED/ADDED.
func testWildcardWatchOrder(t *testing.T, env *localenv.Environment, admin kubernetes.Interface, clients map[string]kubernetes.Interface, paths []string) {
	ctx := t.Context()
	const perWorkspace = 100
	selector := metav1.ListOptions{LabelSelector: "app=burst"}
	start, err := admin.CoreV1().ConfigMaps("").List(ctx, selector)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var want []wildcardEvent
	record := func(typ watch.EventType, p string, cm *corev1.ConfigMap) {
		mu.Lock()
		defer mu.Unlock()
		want = append(want, wildcardEvent{Type: typ, Cluster: env.Workspace(p).Name, Name: cm.Name, RV: rvOf(t, cm)})
	}
	write := func(p string, i int) error {
		cms := clients[p].CoreV1().ConfigMaps("default")
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("burst-%d", i), Namespace: "default",
			Labels: map[string]string{"app": "burst"}}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		record(watch.Added, p, cm)
		cm.Data = map[string]string{"n": strconv.Itoa(i)}
		if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return err
		}
		record(watch.Modified, p, cm)
		return nil
	}

	first, err := admin.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{LabelSelector: selector.LabelSelector, ResourceVersion: start.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(paths))
	for _, p := range paths {
		for parity := range 2 {
			wg.Go(func() {
				for i := parity; i < perWorkspace; i += 2 {
					if err := write(p, i); err != nil {
						errs <- fmt.Errorf("%s: %w", p, err)
						return
					}
				}
			})
		}
	}
	got := collectWildcard(t, first, func(n int, _ wildcardEvent) bool { return n == perWorkspace*len(paths) })
	first.Stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Relabelling: out of the selector is DELETED, into it ADDED; then a marker ends it.
	relabel := func(p, name string, labels map[string]string) *corev1.ConfigMap {
		cm, err := clients[p].CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Labels = labels
		if cm, err = clients[p].CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	record(watch.Deleted, wsA, relabel(wsA, "burst-7", nil))
	record(watch.Added, wsB, relabel(wsB, "unseen", map[string]string{"app": "burst"}))
	marker := relabel("root", "unseen", map[string]string{"app": "burst"})
	record(watch.Added, "root", marker)

	resumeFrom := got[len(got)-1].RV
	second, err := admin.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{LabelSelector: selector.LabelSelector, ResourceVersion: strconv.FormatInt(resumeFrom, 10)})
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, collectWildcard(t, second, func(_ int, ev wildcardEvent) bool { return ev.RV == rvOf(t, marker) })...)
	second.Stop()

	sort.Slice(want, func(i, j int) bool { return want[i].RV < want[j].RV })
	for i := 1; i < len(got); i++ {
		if got[i].RV <= got[i-1].RV {
			t.Fatalf("event %d %+v after %+v: resourceVersions not strictly increasing", i, got[i], got[i-1])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the watches delivered %d events (resumed at %d), want the %d writes exactly:\n got %v\nwant %v", len(got), resumeFrom, len(want), got, want)
	}
}

// collectWildcard reads events of w until done says it has enough (given how many it has
// and the last), failing the test if the watch ends first or a minute passes.
func collectWildcard(t *testing.T, w watch.Interface, done func(n int, last wildcardEvent) bool) []wildcardEvent {
	t.Helper()
	var got []wildcardEvent
	deadline := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended after %d events", len(got))
			}
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if !isCM {
				t.Fatalf("event %s of %T: %v", ev.Type, ev.Object, ev.Object)
			}
			got = append(got, wildcardEvent{Type: ev.Type, Cluster: logicalcluster.NameFrom(cm.Annotations), Name: cm.Name, RV: rvOf(t, cm)})
			if done(len(got), got[len(got)-1]) {
				return got
			}
		case <-deadline:
			t.Fatalf("the watch delivered %d events in a minute, then nothing", len(got))
		}
	}
}
