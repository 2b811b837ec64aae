package integration

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"reflect"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/pkg/virtualworkspace/summarize"
	vwsyncer "github.com/tmc-dev/tmc/pkg/virtualworkspace/syncer"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

const vwLocation = "root:org:locations"

// vwFixture is a location workspace with the SyncTargets east and west, two workload
// workspaces, and the syncer view served in-process over TLS.
type vwFixture struct {
	env        *localenv.Environment
	server     *httptest.Server
	locName    string
	targets    map[string]*workloadv1alpha1.SyncTarget
	keys       map[string]string
	workspaces map[string]kubernetes.Interface
}

// view returns a client of the syncer view of SyncTarget st at cluster ("*" or a
// logical-cluster name) authenticated as user ("" for no token).
func (f *vwFixture) view(t *testing.T, st, uid, user, cluster string) kubernetes.Interface {
	t.Helper()
	cfg := &rest.Config{
		Host:            workloadv1alpha1.SyncerVirtualWorkspaceURL(f.server.URL, f.locName, st, types.UID(uid)) + logicalcluster.ClustersPrefix + cluster,
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.server.Certificate().Raw})},
		QPS:             -1,
	}
	if user != "" {
		cfg.BearerToken = f.env.Tokens.Token(user)
	}
	return kube(t, cfg)
}

func (f *vwFixture) syncer(t *testing.T, st, cluster string) kubernetes.Interface {
	return f.view(t, st, string(f.targets[st].UID), "syncer-"+st, cluster)
}

func startVirtualWorkspaceFixture(t *testing.T) *vwFixture {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{
		Workspaces:             []string{vwLocation, wsA, wsB},
		Users:                  []string{"syncer-east", "syncer-west", "nobody"},
		NoWorkspaceControllers: true,
	})
	locCfg := env.Workspace(vwLocation).AdminConfig()
	if err := localenv.InstallCRDs(ctx, locCfg); err != nil {
		t.Fatal(err)
	}
	tmc, err := tmcclient.NewForConfig(locCfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &vwFixture{env: env, locName: env.Workspace(vwLocation).Name, targets: map[string]*workloadv1alpha1.SyncTarget{}, keys: map[string]string{}, workspaces: map[string]kubernetes.Interface{}}
	for name, resources := range map[string][]workloadv1alpha1.ResourceToSync{
		"east": {{Resource: "configmaps"}, {Group: "apps", Resource: "deployments"}},
		"west": nil, // the default set
	} {
		st, err := tmc.WorkloadV1alpha1().SyncTargets().Create(ctx, &workloadv1alpha1.SyncTarget{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: workloadv1alpha1.SyncTargetSpec{Resources: resources},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.targets[name], f.keys[name] = st, workloadv1alpha1.SyncTargetKeyOf(st, f.locName)
		// Exactly what a syncer needs upstream: sync on its own SyncTarget.
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "sync-" + name}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{workloadv1alpha1.SchemeGroupVersion.Group}, Resources: []string{"synctargets"}, ResourceNames: []string{name}, Verbs: []string{vwsyncer.SyncVerb},
		}}}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sync-" + name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "syncer-" + name}}}
		if err := localenv.CreateObjects(ctx, kube(t, locCfg), role, binding); err != nil {
			t.Fatal(err)
		}
	}
	for _, ws := range []string{wsA, wsB} {
		f.workspaces[ws] = kube(t, env.Workspace(ws).AdminConfig())
	}
	handler, err := vwsyncer.NewHandler(vwsyncer.Options{Upstream: env.UpstreamConfig(localenv.AdminUser)})
	if err != nil {
		t.Fatal(err)
	}
	f.server = httptest.NewUnstartedServer(handler)
	f.server.EnableHTTP2 = true
	f.server.StartTLS()
	t.Cleanup(f.server.Close)
	return f
}

// placed returns labels placing an object on the given targets.
func (f *vwFixture) placed(targets ...string) map[string]string {
	out := map[string]string{}
	for _, st := range targets {
		out[workloadv1alpha1.ClusterResourceStateLabel(f.keys[st])] = workloadv1alpha1.ResourceStateSync
	}
	return out
}

func (f *vwFixture) createObjects(t *testing.T) {
	ctx := t.Context()
	for _, obj := range []struct {
		ws string
		o  runtime.Object
	}{
		{wsA, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: f.placed("east")}}},
		{wsA, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-east", Namespace: "app", Labels: f.placed("east")}}},
		{wsA, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-west", Namespace: "app", Labels: f.placed("west")}}},
		{wsA, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-none", Namespace: "app"}}},
		{wsA, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s-east", Namespace: "app", Labels: f.placed("east")}}},
		{wsA, deployment("web", f.placed("east"))},
		{wsB, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: f.placed("east")}}},
		{wsB, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "west-only", Labels: f.placed("west")}}},
		{wsB, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-b", Namespace: "app", Labels: f.placed("east")}}},
	} {
		if err := createObject(ctx, f.workspaces[obj.ws], obj.o); err != nil {
			t.Fatal(err)
		}
	}
}

// createObject creates a namespace, ConfigMap, Secret or Deployment.
func createObject(ctx context.Context, c kubernetes.Interface, obj runtime.Object) error {
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = c.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ConfigMap:
		_, err = c.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Secret:
		_, err = c.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *appsv1.Deployment:
		_, err = c.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		return fmt.Errorf("cannot create %T", obj)
	}
	return err
}

func deployment(name string, labels map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}},
		},
	}
}

// clusterNames returns "<kcp.io/cluster>|<namespace>/<name>" of each object, sorted.
func clusterNames[T any](items []T, meta func(*T) metav1.Object) []string {
	out := make([]string, 0, len(items))
	for i := range items {
		m := meta(&items[i])
		out = append(out, logicalcluster.NameFrom(m.GetAnnotations())+"|"+m.GetNamespace()+"/"+m.GetName())
	}
	sort.Strings(out)
	return out
}

// The syncer view of a SyncTarget: only its own objects and namespaces, in every workspace,
// each carrying kcp.io/cluster; only with a token allowed to sync that SyncTarget; only its
// own metadata writable; its status stored per target and summarised into .status.
func TestSyncerVirtualWorkspace(t *testing.T) {
	ctx := t.Context()
	f := startVirtualWorkspaceFixture(t)
	f.createObjects(t)
	nameA, nameB := f.env.Workspace(wsA).Name, f.env.Workspace(wsB).Name
	east := f.syncer(t, "east", "*")

	t.Run("wildcard list returns only the target's objects", func(t *testing.T) {
		cms, err := east.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := clusterNames(cms.Items, func(o *corev1.ConfigMap) metav1.Object { return o })
		if want := sortedStrings(nameA+"|app/cm-east", nameB+"|app/cm-b"); !reflect.DeepEqual(got, want) {
			t.Errorf("configmaps: got %v, want %v", got, want)
		}
		nss, err := east.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got = clusterNames(nss.Items, func(o *corev1.Namespace) metav1.Object { return o })
		if want := sortedStrings(nameA+"|/app", nameB+"|/app"); !reflect.DeepEqual(got, want) {
			t.Errorf("namespaces: got %v, want %v", got, want)
		}
		// The caller's selector is ANDed, never replaced.
		cms, err = east.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{LabelSelector: workloadv1alpha1.ClusterResourceStateLabel(f.keys["west"]) + "=Sync"})
		if err != nil || len(cms.Items) != 0 {
			t.Errorf("a selector for another target: got %v, %v; want nothing", cms, err)
		}
	})

	t.Run("wildcard watch delivers only the target's objects", func(t *testing.T) {
		cms, err := east.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := east.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{ResourceVersion: cms.ResourceVersion})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		// The other target's object is written first: the first event must be ours.
		for _, cm := range []*corev1.ConfigMap{
			{ObjectMeta: metav1.ObjectMeta{Name: "late-west", Namespace: "app", Labels: f.placed("west")}},
			{ObjectMeta: metav1.ObjectMeta{Name: "late-east", Namespace: "app", Labels: f.placed("east")}},
		} {
			if err := createObject(ctx, f.workspaces[wsB], cm); err != nil {
				t.Fatal(err)
			}
		}
		ev := nextEvent(t, w)
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if !ok || ev.Type != watch.Added || cm.Name != "late-east" || logicalcluster.NameFrom(cm.Annotations) != nameB {
			t.Errorf("first event: %s %#v, want ADDED late-east of %s", ev.Type, ev.Object, nameB)
		}
	})

	t.Run("another target's object is invisible", func(t *testing.T) {
		inA := f.syncer(t, "east", nameA)
		if _, err := inA.CoreV1().ConfigMaps("app").Get(ctx, "cm-west", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get of another target's object: got %v, want NotFound", err)
		}
		if _, err := inA.CoreV1().ConfigMaps("app").Get(ctx, "cm-none", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get of an unplaced object: got %v, want NotFound", err)
		}
		if _, err := inA.CoreV1().Namespaces().Get(ctx, "west-only", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get of another target's namespace: got %v, want NotFound", err)
		}
		if cm, err := inA.CoreV1().ConfigMaps("app").Get(ctx, "cm-east", metav1.GetOptions{}); err != nil || logicalcluster.NameFrom(cm.Annotations) != nameA {
			t.Errorf("get of the target's object: got %v, %v", cm, err)
		}
		if cms, err := f.syncer(t, "west", "*").CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); err != nil ||
			!reflect.DeepEqual(clusterNames(cms.Items, func(o *corev1.ConfigMap) metav1.Object { return o }), sortedStrings(nameA+"|app/cm-west", nameB+"|app/late-west")) {
			t.Errorf("west's view: got %v, %v", cms, err)
		}
	})

	t.Run("authentication, authorisation, SyncTarget and types", func(t *testing.T) {
		uid := string(f.targets["east"].UID)
		if _, err := f.view(t, "east", uid, "", "*").CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("no token: got %v, want Unauthorized", err)
		}
		if _, err := f.view(t, "east", uid, "nobody", "*").CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("a token without sync: got %v, want Forbidden", err)
		}
		if _, err := f.view(t, "east", uid, "syncer-west", "*").CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("another syncer's token: got %v, want Forbidden", err)
		}
		if _, err := f.view(t, "east", "wrong-uid", "syncer-east", "*").CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("wrong uid: got %v, want Forbidden (never NotFound, which reads as every object gone)", err)
		}
		if _, err := east.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("a type outside spec.resources: got %v, want Forbidden", err)
		}
		if _, err := f.syncer(t, "west", "*").CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("a type of the default set (west's spec.resources is empty): %v", err)
		}
		if _, err := f.syncer(t, "east", nameA).CoreV1().Pods("app").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("pods: got %v, want Forbidden", err)
		}
		if err := f.syncer(t, "east", nameA).CoreV1().ConfigMaps("app").Delete(ctx, "cm-east", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("delete: got %v, want Forbidden", err)
		}
		if _, err := f.syncer(t, "east", nameA).Discovery().ServerGroups(); err != nil {
			t.Errorf("discovery of one workspace: %v", err)
		}
	})

	t.Run("metadata writes", func(t *testing.T) {
		testVirtualWorkspaceMetadataWrites(t, f, nameA)
	})

	t.Run("status summarising", func(t *testing.T) {
		testVirtualWorkspaceStatus(t, f, nameA)
	})

	t.Run("events", func(t *testing.T) {
		events := f.syncer(t, "east", nameA).CoreV1().Events("app")
		ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "app"}, Reason: "Test", Message: "m", Type: corev1.EventTypeNormal,
			InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: "app", Name: "cm-east", APIVersion: "v1"}}
		if _, err := events.Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Errorf("event in a placed namespace: %v", err)
		}
		other := ev.DeepCopy()
		other.Name, other.InvolvedObject.Namespace = "e2", "kube-system"
		if _, err := events.Create(ctx, other, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("event about another namespace: got %v, want Forbidden", err)
		}
		if _, err := f.syncer(t, "west", nameA).CoreV1().Events("app").Create(ctx, ev, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("event in a namespace not placed on the target: got %v, want Forbidden", err)
		}
	})
}

func testVirtualWorkspaceMetadataWrites(t *testing.T, f *vwFixture, nameA string) {
	ctx := t.Context()
	cms := f.syncer(t, "east", nameA).CoreV1().ConfigMaps("app")
	finalizer := workloadv1alpha1.SyncerFinalizerName(f.keys["east"])
	patch := mustMarshal(t, map[string]any{"metadata": map[string]any{"finalizers": []string{finalizer}}})
	if _, err := cms.Patch(ctx, "cm-east", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("finalizer patch refused: %v", err)
	}
	upstream, err := f.workspaces[wsA].CoreV1().ConfigMaps("app").Get(ctx, "cm-east", metav1.GetOptions{})
	if err != nil || !reflect.DeepEqual(upstream.Finalizers, []string{finalizer}) {
		t.Fatalf("finalizer not written upstream: %v, %v", upstream, err)
	}
	for name, p := range map[string]map[string]any{
		"label":               {"metadata": map[string]any{"labels": map[string]any{"app": "x"}}},
		"data":                {"data": map[string]any{"k": "v"}},
		"another's finalizer": {"metadata": map[string]any{"finalizers": []string{finalizer, workloadv1alpha1.SyncerFinalizerName(f.keys["west"])}}},
	} {
		if _, err := cms.Patch(ctx, "cm-east", types.MergePatchType, mustMarshal(t, p), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("%s patch: got %v, want Forbidden", name, err)
		}
	}
	if _, err := cms.Patch(ctx, "cm-west", types.MergePatchType, patch, metav1.PatchOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("patch of another target's object: got %v, want NotFound", err)
	}
	if _, err := cms.Patch(ctx, "cm-east", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); !apierrors.IsUnsupportedMediaType(err) {
		t.Errorf("strategic merge patch: got %v, want UnsupportedMediaType", err)
	}
	// The release: the finalizer goes, through an update with the object as read.
	cm, err := cms.Get(ctx, "cm-east", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Finalizers = nil
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finalizer removal by update refused: %v", err)
	}
	cm.Data = map[string]string{"x": "y"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("data update: got %v, want Forbidden", err)
	}
	stale := cm.DeepCopy()
	stale.ResourceVersion, stale.Data = "1", nil
	if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update with a stale resourceVersion: got %v, want Conflict", err)
	}
	upstream, err = f.workspaces[wsA].CoreV1().ConfigMaps("app").Get(ctx, "cm-east", metav1.GetOptions{})
	if err != nil || len(upstream.Finalizers) != 0 || len(upstream.Data) != 0 {
		t.Errorf("upstream after the writes: %v, %v; want no finalizer and no data", upstream, err)
	}
}

func testVirtualWorkspaceStatus(t *testing.T, f *vwFixture, nameA string) {
	ctx := t.Context()
	upstreamDeployments := f.workspaces[wsA].AppsV1().Deployments("app")
	writeStatus := func(st string, status appsv1.DeploymentStatus) {
		t.Helper()
		deployments := f.syncer(t, st, nameA).AppsV1().Deployments("app")
		d, err := deployments.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status = status
		if _, err := deployments.UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("%s's status update: %v", st, err)
		}
	}
	eastStatus := appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}
	writeStatus("east", eastStatus)
	d, err := upstreamDeployments.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Status, eastStatus) {
		t.Errorf("one target: .status = %+v, want %+v", d.Status, eastStatus)
	}
	if _, ok := d.Annotations[workloadv1alpha1.StatusAnnotation(f.keys["east"])]; !ok {
		t.Errorf("one target: no status annotation: %v", d.Annotations)
	}

	// On two targets: .status is the summary of both.
	d.Labels[workloadv1alpha1.ClusterResourceStateLabel(f.keys["west"])] = workloadv1alpha1.ResourceStateSync
	if _, err := upstreamDeployments.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	westStatus := appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 3}
	writeStatus("west", westStatus)
	d, err = upstreamDeployments.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var targets []summarize.TargetStatus
	for _, st := range []string{"east", "west"} {
		status := map[string]any{}
		if err := json.Unmarshal([]byte(d.Annotations[workloadv1alpha1.StatusAnnotation(f.keys[st])]), &status); err != nil {
			t.Fatalf("%s's status annotation: %v", st, err)
		}
		targets = append(targets, summarize.TargetStatus{Key: f.keys[st], Status: status})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Key < targets[j].Key })
	wantStatus := eastStatus // no aggregation rule for the type: .status is left as it was
	if summary, ok := summarize.Summarize(schema.GroupResource{Group: "apps", Resource: "deployments"}, targets); ok {
		wantStatus = appsv1.DeploymentStatus{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(summary, &wantStatus); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(d.Status, wantStatus) {
		t.Errorf("two targets: .status = %+v, want %+v", d.Status, wantStatus)
	}
}

func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			return ev
		case <-ctx.Done():
			t.Fatal("no watch event within a minute")
		}
	}
}

func sortedStrings(s ...string) []string {
	sort.Strings(s)
	return s
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
