package integration

import (
	"encoding/pem"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// upsyncer returns a client of the upsyncer view of SyncTarget st at cluster, as its syncer.
func (f *vwFixture) upsyncer(t *testing.T, st, cluster string) kubernetes.Interface {
	t.Helper()
	cfg := &rest.Config{
		Host:            workloadv1alpha1.UpsyncerVirtualWorkspaceURL(f.server.URL, f.locName, st, f.targets[st].UID) + logicalcluster.ClustersPrefix + cluster,
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.server.Certificate().Raw})},
		QPS:             -1,
		BearerToken:     f.env.Tokens.Token("syncer-" + st),
	}
	return kube(t, cfg)
}

// upsyncLabels returns the labels marking an object upsynced by st.
func (f *vwFixture) upsyncLabels(st string) map[string]string {
	return map[string]string{workloadv1alpha1.ClusterResourceStateLabel(f.keys[st]): workloadv1alpha1.ResourceStateUpsync}
}

func upsyncPod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "app", Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

// The upsyncer view against a real server: a syncer creates, updates (object and status),
// lists and deletes a pod labelled Upsync for its target in a namespace placed on it, and
// is refused a pod labelled Sync, one in a namespace not placed on it, and the removal of
// the label.
func TestUpsyncerVirtualWorkspace(t *testing.T) {
	ctx := t.Context()
	f := startVirtualWorkspaceFixture(t)
	f.createObjects(t)
	nameA := f.env.Workspace(wsA).Name
	admin := f.workspaces[wsA]
	// Pods need the namespace's default ServiceAccount (no workspace controllers here).
	for _, ns := range []string{"app", "elsewhere"} {
		if ns == "elsewhere" {
			if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().Pods("app").Create(ctx, upsyncPod("synced", f.placed("east")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	east := f.upsyncer(t, "east", nameA)

	created, err := east.CoreV1().Pods("app").Create(ctx, upsyncPod("up", f.upsyncLabels("east")), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create of an upsynced pod: %v", err)
	}
	created.Annotations = map[string]string{workloadv1alpha1.UpsyncResourceVersionAnnotation: "42"}
	updated, err := east.CoreV1().Pods("app").Update(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update of an upsynced pod: %v", err)
	}
	updated.Status.Phase = corev1.PodRunning
	if _, err := east.CoreV1().Pods("app").UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status update of an upsynced pod: %v", err)
	}
	if got, err := admin.CoreV1().Pods("app").Get(ctx, "up", metav1.GetOptions{}); err != nil || got.Status.Phase != corev1.PodRunning || got.Annotations[workloadv1alpha1.UpsyncResourceVersionAnnotation] != "42" {
		t.Fatalf("the workspace's pod after the writes: %v, %v", got, err)
	}
	list, err := f.upsyncer(t, "east", "*").CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "up" {
		t.Fatalf("the upsyncer's pods: %v, %v; want only up", list, err)
	}

	refused := map[string]error{}
	_, refused["create labelled Sync"] = east.CoreV1().Pods("app").Create(ctx, upsyncPod("sync-labelled", f.placed("east")), metav1.CreateOptions{})
	pod := upsyncPod("unplaced", f.upsyncLabels("east"))
	pod.Namespace = "elsewhere"
	_, refused["create in a namespace not placed on east"] = east.CoreV1().Pods("elsewhere").Create(ctx, pod, metav1.CreateOptions{})
	_, refused["patch of a Sync pod"] = east.CoreV1().Pods("app").Patch(ctx, "synced", types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"b"}}}`), metav1.PatchOptions{})
	refused["delete of a Sync pod"] = east.CoreV1().Pods("app").Delete(ctx, "synced", metav1.DeleteOptions{})
	unlabel := []byte(`{"metadata":{"labels":{"` + workloadv1alpha1.ClusterResourceStateLabel(f.keys["east"]) + `":null}}}`)
	_, refused["removing the Upsync label"] = east.CoreV1().Pods("app").Patch(ctx, "up", types.MergePatchType, unlabel, metav1.PatchOptions{})
	_, refused["west writing east's pod"] = f.upsyncer(t, "west", nameA).CoreV1().Pods("app").Patch(ctx, "up", types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"b"}}}`), metav1.PatchOptions{})
	for what, err := range refused {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden", what, err)
		}
	}

	if err := east.CoreV1().Pods("app").Delete(ctx, "up", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete of an upsynced pod: %v", err)
	}
	if _, err := admin.CoreV1().Pods("app").Get(ctx, "up", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the upsynced pod after its deletion: %v, want NotFound", err)
	}
	if _, err := admin.CoreV1().Pods("app").Get(ctx, "synced", metav1.GetOptions{}); err != nil {
		t.Errorf("the Sync pod: %v, want it untouched", err)
	}
}
