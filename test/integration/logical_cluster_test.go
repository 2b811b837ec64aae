package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tmc-dev/tmc/pkg/localenv"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// Like kcp's logical clusters, each emulated workspace has an opaque logical-cluster name
// distinct from its path (the root's is "root"), is served at /clusters/<name> as at
// /clusters/<path>, and records the name on every object it stores, whatever the client
// sends — the apiserver's own objects and CRD objects included.
func TestWorkspacesHaveLogicalClusterNames(t *testing.T) {
	ctx := t.Context()
	env := localenv.StartForTest(t, localenv.Options{Workspaces: []string{"root", wsA, wsB}})
	if env.Workspace("root").Name != "root" {
		t.Errorf("root's logical-cluster name is %q, want root (as on kcp)", env.Workspace("root").Name)
	}
	a, b := env.Workspace(wsA), env.Workspace(wsB)
	if a.Name == wsA || a.Name == "" || a.Name == b.Name {
		t.Fatalf("logical-cluster names %q (%s) and %q (%s): want opaque names distinct from paths and from each other", a.Name, wsA, b.Name, wsB)
	}

	byPath := kube(t, a.AdminConfig())
	byName := kube(t, env.FrontProxy.Config(logicalcluster.NewPath(a.Name), localenv.AdminUser))
	forged := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "forged", Namespace: "default",
		Annotations: map[string]string{logicalcluster.AnnotationKey: b.Name}}}
	created, err := byName.CoreV1().ConfigMaps("default").Create(ctx, forged, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create through /clusters/%s: %v", a.Name, err)
	}
	if got := created.Annotations[logicalcluster.AnnotationKey]; got != a.Name {
		t.Errorf("a client set %s=%s; the workspace stored %q, want its own name %q", logicalcluster.AnnotationKey, b.Name, got, a.Name)
	}
	viaPath, err := byPath.CoreV1().ConfigMaps("default").Get(ctx, "forged", metav1.GetOptions{})
	if err != nil || viaPath.UID != created.UID {
		t.Fatalf("the object created at /clusters/%s is not the one at /clusters/%s: %v", a.Name, wsA, err)
	}

	// Updates cannot change or drop it either.
	viaPath.Annotations = nil
	updated, err := byPath.CoreV1().ConfigMaps("default").Update(ctx, viaPath, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := updated.Annotations[logicalcluster.AnnotationKey]; got != a.Name {
		t.Errorf("after an update without annotations: %s=%q, want %q", logicalcluster.AnnotationKey, got, a.Name)
	}

	// Objects the apiserver and the workspace controllers create carry it too.
	ns, err := byPath.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil || ns.Annotations[logicalcluster.AnnotationKey] != a.Name {
		t.Errorf("namespace default: %v, annotations %v; want %s=%s", err, ns.Annotations, logicalcluster.AnnotationKey, a.Name)
	}
	poll(t, ctx, time.Minute, "kube-root-ca.crt of default carries the logical cluster", func(ctx context.Context) (bool, error) {
		cm, err := byPath.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && cm.Annotations[logicalcluster.AnnotationKey] == a.Name, nil
	})

	// Custom resources too.
	if err := localenv.InstallCRDs(ctx, a.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(a.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	st := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "workload.kcp.io/v1alpha1", "kind": "SyncTarget", "metadata": map[string]any{"name": "east"},
	}}
	gotST, err := dyn.Resource(schema.GroupVersionResource{Group: "workload.kcp.io", Version: "v1alpha1", Resource: "synctargets"}).Create(ctx, st, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := logicalcluster.NameFrom(gotST.GetAnnotations()); got != a.Name {
		t.Errorf("SyncTarget %s=%q, want %q", logicalcluster.AnnotationKey, got, a.Name)
	}

	// The other workspace records its own name.
	nsB, err := kube(t, b.AdminConfig()).CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil || nsB.Annotations[logicalcluster.AnnotationKey] != b.Name {
		t.Errorf("%s namespace default: %v, annotations %v; want %s", wsB, err, nsB.Annotations, b.Name)
	}

	// A workspace restored empty is the same logical cluster: same name, served at both URLs.
	if err := env.ReplaceWorkspace(ctx, wsA); err != nil {
		t.Fatal(err)
	}
	if env.Workspace(wsA).Name != a.Name {
		t.Errorf("the replaced workspace is named %q, want %q", env.Workspace(wsA).Name, a.Name)
	}
	nsAfter, err := byName.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil || nsAfter.Annotations[logicalcluster.AnnotationKey] != a.Name {
		t.Errorf("after the replacement, /clusters/%s: %v, annotations %v", a.Name, err, nsAfter.Annotations)
	}
}
