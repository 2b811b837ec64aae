package resource

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

var (
	eastLabel      = workloadv1alpha1.ClusterResourceStateLabel(stKeyEast)
	westLabel      = workloadv1alpha1.ClusterResourceStateLabel(stKeyWest)
	eastDeletion   = workloadv1alpha1.DeletionAnnotation(stKeyEast)
	westDeletion   = workloadv1alpha1.DeletionAnnotation(stKeyWest)
	eastSoft       = workloadv1alpha1.SoftFinalizersAnnotation(stKeyEast)
	eastFinalizer  = workloadv1alpha1.SyncerFinalizerName(stKeyEast)
	nsDeletionTime = "2026-03-01T11:00:00Z"
	nowRFC3339     = testNow.Format(time.RFC3339)
)

func TestResourceReconcile(t *testing.T) {
	sync := workloadv1alpha1.ResourceStateSync
	tests := []struct {
		name           string
		nsLabels       map[string]string
		nsAnnotations  map[string]string
		obj            *unstructured.Unstructured
		wantPatch      map[string]any // nil: no write
		wantLabels     map[string]string
		wantAnnotation map[string]string
		wantFinalizers []string
	}{
		{
			name:       "adds the state label of a placed namespace",
			nsLabels:   map[string]string{eastLabel: sync},
			obj:        configMap(testNamespace, "cm"),
			wantPatch:  map[string]any{"metadata": map[string]any{"resourceVersion": "42", "labels": map[string]any{eastLabel: sync}}},
			wantLabels: map[string]string{eastLabel: sync},
		},
		{
			name:     "no write when already labelled",
			nsLabels: map[string]string{eastLabel: sync},
			obj:      configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync})),
		},
		{
			name:       "adds the labels of every target the namespace is placed on",
			nsLabels:   map[string]string{eastLabel: sync, westLabel: sync},
			obj:        configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync})),
			wantPatch:  map[string]any{"metadata": map[string]any{"resourceVersion": "42", "labels": map[string]any{westLabel: sync}}},
			wantLabels: map[string]string{eastLabel: sync, westLabel: sync},
		},
		{
			name:       "other labels untouched",
			nsLabels:   map[string]string{eastLabel: sync, "team": "a"},
			obj:        configMap(testNamespace, "cm", withLabels(map[string]string{"app": "web"})),
			wantPatch:  map[string]any{"metadata": map[string]any{"resourceVersion": "42", "labels": map[string]any{eastLabel: sync}}},
			wantLabels: map[string]string{"app": "web", eastLabel: sync},
		},
		{
			name:          "namespace deletion annotation copied",
			nsLabels:      map[string]string{eastLabel: sync},
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj:           configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync})),
			wantPatch: map[string]any{"metadata": map[string]any{"resourceVersion": "42",
				"annotations": map[string]any{eastDeletion: nsDeletionTime}}},
			wantLabels:     map[string]string{eastLabel: sync},
			wantAnnotation: map[string]string{eastDeletion: nsDeletionTime},
		},
		{
			name:          "deletion annotation already copied",
			nsLabels:      map[string]string{eastLabel: sync},
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj: configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync}),
				withAnnotations(map[string]string{eastDeletion: "2026-03-01T11:00:05Z"})),
		},
		{
			name:          "an upsynced copy in a namespace being removed gets no deletion annotation",
			nsLabels:      map[string]string{eastLabel: sync},
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj:           configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: workloadv1alpha1.ResourceStateUpsync})),
		},
		{
			name:          "deleting namespace does not label unlabelled objects",
			nsLabels:      map[string]string{eastLabel: sync},
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj:           configMap(testNamespace, "cm"),
		},
		{
			name:          "deletion annotation alone (label already gone from the namespace) is still copied",
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj:           configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync})),
			wantPatch: map[string]any{"metadata": map[string]any{"resourceVersion": "42",
				"annotations": map[string]any{eastDeletion: nsDeletionTime}}},
			wantLabels:     map[string]string{eastLabel: sync},
			wantAnnotation: map[string]string{eastDeletion: nsDeletionTime},
		},
		{
			name:     "object labelled for a key the namespace dropped gets the deletion annotation",
			nsLabels: map[string]string{westLabel: sync},
			obj:      configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync, westLabel: sync})),
			wantPatch: map[string]any{"metadata": map[string]any{"resourceVersion": "42",
				"annotations": map[string]any{eastDeletion: nowRFC3339}}},
			wantLabels:     map[string]string{eastLabel: sync, westLabel: sync},
			wantAnnotation: map[string]string{eastDeletion: nowRFC3339},
		},
		{
			name:     "object pending or upsynced for a dropped key is left alone",
			nsLabels: map[string]string{westLabel: sync},
			obj: configMap(testNamespace, "cm", withLabels(map[string]string{
				eastLabel: workloadv1alpha1.ResourceStatePendingValue, westLabel: sync,
				workloadv1alpha1.ClusterResourceStateLabel("other"): workloadv1alpha1.ResourceStateUpsync,
			})),
		},
		{
			name:          "soft finalizers and finalizers untouched",
			nsLabels:      map[string]string{eastLabel: sync},
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj: configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync}),
				withAnnotations(map[string]string{eastSoft: "example.com/backup"}),
				func(u *unstructured.Unstructured) { u.SetFinalizers([]string{eastFinalizer}) }),
			wantPatch: map[string]any{"metadata": map[string]any{"resourceVersion": "42",
				"annotations": map[string]any{eastDeletion: nsDeletionTime}}},
			wantLabels:     map[string]string{eastLabel: sync},
			wantAnnotation: map[string]string{eastSoft: "example.com/backup", eastDeletion: nsDeletionTime},
			wantFinalizers: []string{eastFinalizer},
		},
		{
			name: "namespace without labels: nothing, even for hand-labelled objects",
			obj:  configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: sync})),
		},
		{
			name:     "pending namespace label adds nothing",
			nsLabels: map[string]string{eastLabel: workloadv1alpha1.ResourceStatePendingValue},
			obj:      configMap(testNamespace, "cm"),
		},
		{
			name:     "upsync value on the object is kept",
			nsLabels: map[string]string{eastLabel: sync},
			obj:      configMap(testNamespace, "cm", withLabels(map[string]string{eastLabel: workloadv1alpha1.ResourceStateUpsync})),
		},
		{
			name:     "kube-root-ca.crt of a placed namespace is never labelled",
			nsLabels: map[string]string{eastLabel: sync},
			obj:      configMap(testNamespace, "kube-root-ca.crt"),
		},
		{
			name:     "an object a Deployment controls is never labelled",
			nsLabels: map[string]string{eastLabel: sync},
			obj:      configMap(testNamespace, "cm", withController("apps/v1", "Deployment", "web")),
		},
		{
			name:       "an object an operator on the hub controls is labelled",
			nsLabels:   map[string]string{eastLabel: sync},
			obj:        configMap(testNamespace, "cm", withController("example.com/v1", "Database", "db")),
			wantPatch:  map[string]any{"metadata": map[string]any{"resourceVersion": "42", "labels": map[string]any{eastLabel: sync}}},
			wantLabels: map[string]string{eastLabel: sync},
		},
		{
			name:          "a hand-labelled kube-root-ca.crt still gets the deletion annotation, so that the syncer releases it",
			nsLabels:      map[string]string{eastLabel: sync},
			nsAnnotations: map[string]string{eastDeletion: nsDeletionTime},
			obj:           configMap(testNamespace, "kube-root-ca.crt", withLabels(map[string]string{eastLabel: sync})),
			wantPatch: map[string]any{"metadata": map[string]any{"resourceVersion": "42",
				"annotations": map[string]any{eastDeletion: nsDeletionTime}}},
			wantLabels:     map[string]string{eastLabel: sync},
			wantAnnotation: map[string]string{eastDeletion: nsDeletionTime},
		},
		{
			name:     "object being deleted is skipped",
			nsLabels: map[string]string{eastLabel: sync},
			obj: configMap(testNamespace, "cm", func(u *unstructured.Unstructured) {
				u.SetDeletionTimestamp(&metav1.Time{Time: testNow})
				u.SetFinalizers([]string{"example.com/keep"})
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(testNamespace, tt.nsLabels, tt.nsAnnotations)
			env := newTestEnv(t, nil, []*corev1.Namespace{ns}, []*unstructured.Unstructured{tt.obj}, nil)
			env.dynamic.ClearActions()

			key := objectKey{workspace: testWorkspace, gvr: configMapsGVR, namespace: testNamespace, name: tt.obj.GetName()}
			if err := env.c.reconcile(t.Context(), key); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			patches := env.patches(t)
			updates := testutil.ToFloat64(env.c.labelUpdates.WithLabelValues(testWorkspace))
			if tt.wantPatch == nil {
				if len(patches) != 0 {
					t.Fatalf("want no write, got patches %v", patches)
				}
				if updates != 0 {
					t.Errorf("label updates metric = %v, want 0", updates)
				}
				return
			}
			if len(patches) != 1 || !reflect.DeepEqual(patches[0], tt.wantPatch) {
				t.Fatalf("patches = %v, want exactly %v", patches, tt.wantPatch)
			}
			if updates != 1 {
				t.Errorf("label updates metric = %v, want 1", updates)
			}
			got, err := env.dynamic.Resource(configMapsGVR).Namespace(testNamespace).Get(t.Context(), tt.obj.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get object: %v", err)
			}
			if !maps.Equal(got.GetLabels(), tt.wantLabels) {
				t.Errorf("labels = %v, want %v", got.GetLabels(), tt.wantLabels)
			}
			if !maps.Equal(got.GetAnnotations(), tt.wantAnnotation) {
				t.Errorf("annotations = %v, want %v", got.GetAnnotations(), tt.wantAnnotation)
			}
			if !reflect.DeepEqual(got.GetFinalizers(), tt.wantFinalizers) {
				t.Errorf("finalizers = %v, want %v", got.GetFinalizers(), tt.wantFinalizers)
			}
		})
	}
}

func TestResourceReconcileSkipsUnknownObjects(t *testing.T) {
	env := newTestEnv(t, nil, []*corev1.Namespace{newNamespace(testNamespace, map[string]string{eastLabel: "Sync"}, nil)}, nil, nil)
	for _, key := range []objectKey{
		{workspace: testWorkspace, gvr: configMapsGVR, namespace: testNamespace, name: "missing"},
		{workspace: "root:unknown", gvr: configMapsGVR, namespace: testNamespace, name: "cm"},
		{workspace: testWorkspace, gvr: widgetsGVR, namespace: testNamespace, name: "w"},
		{workspace: testWorkspace, gvr: configMapsGVR, namespace: "no-such-namespace", name: "cm"},
	} {
		if err := env.c.reconcile(t.Context(), key); err != nil {
			t.Errorf("reconcile %s: %v", key, err)
		}
	}
	if patches := env.patches(t); len(patches) != 0 {
		t.Errorf("want no write, got %v", patches)
	}
}

func TestResourceDesiredChangesDeletionTimeIsUTC(t *testing.T) {
	ns := namespaceState{labels: map[string]string{}, deletions: map[string]string{}}
	local := time.Date(2026, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	ch := desiredChanges(ns, map[string]string{eastLabel: "Sync"}, nil, local)
	if got, want := ch.annotations[eastDeletion], "2026-03-01T12:00:00Z"; got != want {
		t.Errorf("deletion annotation = %q, want %q", got, want)
	}
	if _, err := workloadv1alpha1.ParseDeletionTimestamp(ch.annotations[eastDeletion]); err != nil {
		t.Errorf("annotation does not parse: %v", err)
	}
}

func withController(apiVersion, kind, name string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		isController := true
		u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: "owner-uid", Controller: &isController}})
	}
}

// TestResourcePerNamespaceSystemObjectsAreNotLabelled: in a placed namespace, the objects
// every kcp (or Kubernetes) namespace holds are left alone, while a user's objects of the
// same types are labelled.
func TestResourcePerNamespaceSystemObjectsAreNotLabelled(t *testing.T) {
	serviceAccountsGVR := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	secretsGVR := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	tokenSecret := newObject(secretsGVR, "Secret", testNamespace, "default-token", func(u *unstructured.Unstructured) {
		u.Object["type"] = string(corev1.SecretTypeServiceAccountToken)
	})
	objects := []*unstructured.Unstructured{
		configMap(testNamespace, "kube-root-ca.crt"),
		newObject(serviceAccountsGVR, "ServiceAccount", testNamespace, "default"),
		tokenSecret,
		configMap(testNamespace, "web-config"),
		newObject(serviceAccountsGVR, "ServiceAccount", testNamespace, "web"),
	}
	ns := newNamespace(testNamespace, map[string]string{eastLabel: workloadv1alpha1.ResourceStateSync}, nil)
	env := newTestEnv(t, nil, []*corev1.Namespace{ns}, objects, nil)
	env.dynamic.ClearActions()
	gvrs := []schema.GroupVersionResource{configMapsGVR, serviceAccountsGVR, secretsGVR, configMapsGVR, serviceAccountsGVR}
	for i, o := range objects {
		if err := env.c.reconcile(t.Context(), objectKey{workspace: testWorkspace, gvr: gvrs[i], namespace: testNamespace, name: o.GetName()}); err != nil {
			t.Fatalf("reconcile %s: %v", o.GetName(), err)
		}
	}
	var patched []string
	for _, a := range env.dynamic.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			patched = append(patched, p.GetResource().Resource+"/"+p.GetName())
		}
	}
	if want := []string{"configmaps/web-config", "serviceaccounts/web"}; !reflect.DeepEqual(patched, want) {
		t.Errorf("patched %v, want only the user's objects %v", patched, want)
	}
	if got := env.c.TypesInUse(testWorkspace, testNamespace); len(got) != 2 {
		t.Errorf("TypesInUse = %v, want configmaps and serviceaccounts (the user's objects)", got)
	}
}
