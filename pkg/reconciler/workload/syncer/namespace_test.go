package syncer

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestResourceControllerNamespaceCleanup(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	terminating := func(ns *corev1.Namespace) *corev1.Namespace {
		now := metav1.Now()
		ns.DeletionTimestamp = &now
		return ns
	}
	withLocator := func(ns *corev1.Namespace, value string) *corev1.Namespace {
		ns.Annotations[workloadv1alpha1.NamespaceLocatorAnnotation] = value
		return ns
	}
	goneWorkspace := testLocator("root:org:gone", testNamespace)
	goneNS, err := goneWorkspace.DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	otherTarget := workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, testSyncTargetName, "previous-uid", testWorkspace, testNamespace)

	tests := []struct {
		name               string
		objs               func(t *testing.T) testObjects
		namespace          string // dsNS when empty
		informersNotSynced bool
		namespacesNotSync  bool
		notReconciled      bool // no resource type accepted yet, e.g. the first discovery failed
		unauthorizedType   bool // a requested type is Unauthorized: its objects cannot be seen

		wantErr    bool
		wantDelete bool
	}{
		{
			name:       "empty owned namespace: deleted",
			objs:       func(t *testing.T) testObjects { return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}} },
			wantDelete: true,
		},
		{
			name: "downstream objects left: kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
					downstream: []*unstructured.Unstructured{syncedCopy(t, upstreamDeployment("web"))},
				}
			},
		},
		{
			name: "upstream namespace still holds synced objects: kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
					upstream:   []*unstructured.Unstructured{upstreamConfigMap("web")},
				}
			},
		},
		{
			name: "synced objects only in other upstream namespaces: deleted",
			objs: func(t *testing.T) testObjects {
				other := upstreamConfigMap("web")
				other.SetNamespace("other")
				return testObjects{
					namespaces: []*corev1.Namespace{ownedNamespace(t)},
					upstream:   []*unstructured.Unstructured{other},
				}
			},
			wantDelete: true,
		},
		{
			name:               "object informers not synced (startup): kept",
			objs:               func(t *testing.T) testObjects { return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}} },
			informersNotSynced: true,
			wantErr:            true,
		},
		{
			name:              "namespace informer not synced (startup): kept",
			objs:              func(t *testing.T) testObjects { return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}} },
			namespacesNotSync: true,
			wantErr:           true,
		},
		{
			name: "before the first successful discovery (no object informers): kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{
					namespaces:         []*corev1.Namespace{ownedNamespace(t)},
					downstreamLiveOnly: []*unstructured.Unstructured{syncedCopy(t, upstreamDeployment("web"))},
				}
			},
			notReconciled: true,
			wantErr:       true,
		},
		{
			name: "a requested type is unauthorized (its objects are invisible): kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}}
			},
			unauthorizedType: true,
			wantErr:          true,
		},
		{
			name: "locator of another SyncTarget (re-created with a new UID): kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{downstreamNamespace(t, dsNS, otherTarget)}}
			},
		},
		{
			name: "invalid locator: kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{withLocator(ownedNamespace(t), "{")}}
			},
		},
		{
			name: "not in the owned-namespace cache: kept",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespacesLiveOnly: []*corev1.Namespace{ownedNamespace(t)}}
			},
		},
		{
			name: "already terminating: nothing to do",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{terminating(ownedNamespace(t))}}
			},
		},
		{
			name: "empty namespace of a workspace no longer watched: deleted",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{downstreamNamespace(t, goneNS, goneWorkspace)}}
			},
			namespace:  goneNS,
			wantDelete: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.objs(t))
			env.informersSynced.Store(!tc.informersNotSynced)
			env.namespacesSynced.Store(!tc.namespacesNotSync)
			if tc.notReconciled {
				e := env.engine
				clear(e.resources)
				clear(e.upstreamInformers)
				clear(e.downstreamInformers)
			}
			if tc.unauthorizedType {
				env.engine.resourceStates = []workloadv1alpha1.SyncedResource{{
					ResourceToSync: workloadv1alpha1.ResourceToSync{Resource: "secrets"},
					State:          workloadv1alpha1.ResourceStateUnauthorized,
				}}
			}
			name := tc.namespace
			if name == "" {
				name = dsNS
			}
			err := env.namespaces.clean(t.Context(), name)
			if (err != nil) != tc.wantErr {
				t.Errorf("got error %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantDelete {
				expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
				return
			}
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), []string{"delete namespaces"})
			del := findAction[clienttesting.DeleteActionImpl](t, env.downstreamKube.Actions(), "delete", "namespaces")
			if del.GetName() != name {
				t.Errorf("deleted namespace %q, want %q", del.GetName(), name)
			}
			if pre := del.DeleteOptions.Preconditions; pre == nil || pre.UID == nil || string(*pre.UID) != "uid-"+name {
				t.Errorf("got preconditions %+v, want the UID of the cached namespace", pre)
			}
		})
	}
}

func TestResourceControllerNamespaceEnsure(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	tests := []struct {
		name        string
		objs        func(t *testing.T) testObjects
		wantErr     bool
		wantErrType tmc.TMCErrorType
		wantWrites  []string
	}{
		{
			name: "owned namespace in cache: nothing to do",
			objs: func(t *testing.T) testObjects { return testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}} },
		},
		{
			name:       "missing: created",
			objs:       func(t *testing.T) testObjects { return testObjects{} },
			wantWrites: []string{"create namespaces"},
		},
		{
			name: "created meanwhile (cache lag) with our locator: accepted",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespacesLiveOnly: []*corev1.Namespace{ownedNamespace(t)}}
			},
			wantWrites: []string{"create namespaces"},
		},
		{
			name: "owned namespace terminating: wait",
			objs: func(t *testing.T) testObjects {
				ns := ownedNamespace(t)
				now := metav1.Now()
				ns.DeletionTimestamp = &now
				return testObjects{namespaces: []*corev1.Namespace{ns}}
			},
			wantErr: true,
		},
		{
			name: "same name, other upstream namespace: collision",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{downstreamNamespace(t, dsNS, testLocator(testWorkspace, "other"))}}
			},
			wantErr:     true,
			wantErrType: tmc.TMCErrorTypeNamespaceCollision,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.objs(t))
			err := env.namespaces.ensure(t.Context(), testLocator(testWorkspace, testNamespace), dsNS)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error: %v", err, tc.wantErr)
			}
			var tmcErr *tmc.TMCError
			if tc.wantErrType != "" && (!errors.As(err, &tmcErr) || tmcErr.Type != tc.wantErrType) {
				t.Errorf("got error %v, want type %s", err, tc.wantErrType)
			}
			expectWrites(t, "downstream kube", env.downstreamKube.Actions(), tc.wantWrites)
		})
	}
}

func TestResourceControllerNamespaceLocatorOf(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	env := newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{ownedNamespace(t)}})
	loc, ok := env.namespaces.locatorOf(dsNS)
	if !ok || loc != testLocator(testWorkspace, testNamespace) {
		t.Errorf("locatorOf(%s) = %+v, %v; want %+v", dsNS, loc, ok, testLocator(testWorkspace, testNamespace))
	}
	if _, ok := env.namespaces.locatorOf("kcp-unknown"); ok {
		t.Error("locatorOf must not find a namespace missing from the cache")
	}
	env.engine.namespaceLister = nil // before the namespace informer starts
	if _, ok := env.namespaces.locatorOf(dsNS); ok {
		t.Error("locatorOf must not find anything before the namespace informer starts")
	}
}
