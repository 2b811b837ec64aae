package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// namespaceTestBudget records the deletions asked for and admits them if allow.
type namespaceTestBudget struct {
	allow bool
	asked []plannedDeletion
}

func (b *namespaceTestBudget) admit(_ context.Context, d plannedDeletion) bool {
	b.asked = append(b.asked, d)
	return b.allow
}

// upstreamNS is upstream namespace testNamespace of testWorkspace, placed on this target.
func upstreamNS(opts ...func(*corev1.Namespace)) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:            testNamespace,
		ResourceVersion: "3",
		Labels:          map[string]string{testStateKey: workloadv1alpha1.ResourceStateSync},
		Annotations:     map[string]string{},
	}}
	for _, o := range opts {
		o(ns)
	}
	return ns
}

func withoutStateLabel(ns *corev1.Namespace) { delete(ns.Labels, testStateKey) }

func pendingState(ns *corev1.Namespace) {
	ns.Labels[testStateKey] = workloadv1alpha1.ResourceStatePendingValue
}

func beingRemoved(ns *corev1.Namespace) {
	ns.Annotations[workloadv1alpha1.DeletionAnnotation(testStKey)] = "2026-01-01T00:00:00Z"
}

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
	withOrphans := func(ns *corev1.Namespace) *corev1.Namespace {
		ns.Annotations[workloadv1alpha1.DownstreamOrphansAnnotation] = "2026-01-01T00:00:00Z"
		ns.ResourceVersion = "11"
		return ns
	}
	marked := func(ns *corev1.Namespace) *corev1.Namespace {
		ns.Annotations[workloadv1alpha1.PlacedNamespaceAnnotation] = "true"
		return ns
	}
	// owned is the empty downstream namespace of testWorkspace/testNamespace, created while
	// its upstream namespace was placed by its label; the upstream namespace is gone unless
	// a case adds one.
	owned := func(t *testing.T) testObjects {
		return testObjects{namespaces: []*corev1.Namespace{marked(ownedNamespace(t))}}
	}
	withUpstream := func(cached, live []*corev1.Namespace) func(t *testing.T) testObjects {
		return func(t *testing.T) testObjects {
			objs := owned(t)
			objs.upstreamNamespaces, objs.upstreamNamespacesLiveOnly = cached, live
			return objs
		}
	}
	unmarked := func(cached, live []*corev1.Namespace) func(t *testing.T) testObjects {
		return func(t *testing.T) testObjects {
			objs := withUpstream(cached, live)(t)
			objs.namespaces = []*corev1.Namespace{ownedNamespace(t)}
			return objs
		}
	}
	upstreamTerminating := func(ns *corev1.Namespace) {
		now := metav1.Now()
		ns.DeletionTimestamp = &now
	}
	goneWorkspace := testLocator("root:org:gone", testNamespace)
	goneNS, err := goneWorkspace.DownstreamNamespaceName()
	if err != nil {
		t.Fatal(err)
	}
	otherTarget := workloadv1alpha1.NewNamespaceLocator(testLocationWorkspace, testSyncTargetName, "previous-uid", testWorkspace, testNamespace)

	const (
		notYetDecided = "not yet"
		failed        = "error"
	)
	tests := []struct {
		name               string
		objs               func(t *testing.T) testObjects
		namespace          string // dsNS when empty
		informersNotSynced bool
		namespacesNotSync  bool
		notReconciled      bool // no resource type accepted yet, e.g. the first discovery failed
		unauthorizedType   bool // a requested type is Unauthorized: its objects cannot be seen
		targetDeleting     bool
		budgetDenies       bool
		prepare            func(t *testing.T, env *testEnv)

		wantErr     string // "", notYetDecided or failed
		wantDelete  bool
		wantRelease bool
		wantMark    bool
	}{
		// The guard of issue 11: emptiness alone never deletes.
		{
			name: "empty, upstream namespace placed: kept",
			objs: withUpstream([]*corev1.Namespace{upstreamNS()}, nil),
		},
		{
			name: "empty, upstream namespace placed but not cached yet (live read): kept",
			objs: withUpstream(nil, []*corev1.Namespace{upstreamNS()}),
		},
		{
			name: "empty, upstream namespace placed, orphans recorded: untouched",
			objs: func(t *testing.T) testObjects {
				objs := withUpstream([]*corev1.Namespace{upstreamNS()}, nil)(t)
				objs.namespaces = []*corev1.Namespace{marked(withOrphans(ownedNamespace(t)))}
				return objs
			},
		},
		{
			name:       "empty, upstream namespace gone (live 404): deleted",
			objs:       owned,
			wantDelete: true,
		},
		{
			// The hub CA copy is the syncer's, not a synced object: it goes with the namespace.
			name: "holds only the hub CA copy (kcp-root-ca.crt), upstream namespace gone: deleted",
			objs: func(t *testing.T) testObjects {
				objs := owned(t)
				objs.downstream = []*unstructured.Unstructured{hubCACopyObject(dsNS, "hub CA")}
				return objs
			},
			wantDelete: true,
		},
		{
			name:       "empty, upstream namespace no longer labelled for this target: deleted",
			objs:       withUpstream(nil, []*corev1.Namespace{upstreamNS(withoutStateLabel)}),
			wantDelete: true,
		},
		{
			name:    "empty, upstream namespace never labelled (objects labelled by hand, no marker): kept, looked at again",
			objs:    unmarked(nil, []*corev1.Namespace{upstreamNS(withoutStateLabel)}),
			wantErr: notYetDecided,
		},
		{
			name:       "empty, never marked, upstream namespace being deleted: deleted",
			objs:       unmarked(nil, []*corev1.Namespace{upstreamNS(withoutStateLabel, upstreamTerminating)}),
			wantDelete: true,
		},
		{
			name:       "empty, never marked, upstream namespace gone (live 404): deleted",
			objs:       unmarked(nil, nil),
			wantDelete: true,
		},
		{
			name:       "empty, never marked, being removed from this target (deletion annotation): deleted",
			objs:       unmarked([]*corev1.Namespace{upstreamNS(beingRemoved)}, nil),
			wantDelete: true,
		},
		{
			name:     "empty, upstream namespace placed, not marked yet: kept and marked",
			objs:     unmarked([]*corev1.Namespace{upstreamNS()}, nil),
			wantMark: true,
		},
		{
			name:       "empty, upstream state label no longer Sync: deleted",
			objs:       withUpstream([]*corev1.Namespace{upstreamNS(pendingState)}, nil),
			wantDelete: true,
		},
		{
			name:       "empty, upstream namespace being removed from this target (deletion annotation): deleted",
			objs:       withUpstream([]*corev1.Namespace{upstreamNS(beingRemoved)}, nil),
			wantDelete: true,
		},
		{
			name: "cache says removed, live read says placed again: kept",
			objs: func(t *testing.T) testObjects {
				objs := withUpstream([]*corev1.Namespace{upstreamNS(beingRemoved)}, nil)(t)
				objs.upstreamNamespacesLiveOnly = nil
				return objs
			},
			prepare: func(t *testing.T, env *testEnv) {
				if _, err := env.upstreamKube.CoreV1().Namespaces().Update(t.Context(), upstreamNS(), metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "live read of the upstream namespace fails: kept, retried",
			objs: owned,
			prepare: func(t *testing.T, env *testEnv) {
				env.upstreamKube.PrependReactor("get", "namespaces", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewServiceUnavailable("upstream down")
				})
			},
			wantErr: failed,
		},
		{
			name:           "empty, SyncTarget being deleted: deleted although the upstream namespace is placed",
			objs:           withUpstream([]*corev1.Namespace{upstreamNS()}, nil),
			targetDeleting: true,
			wantDelete:     true,
		},
		{
			name:         "deletion held by the budget: kept, looked at again",
			objs:         owned,
			budgetDenies: true,
			wantErr:      notYetDecided,
		},
		{
			name: "orphans recorded: released instead of deleted",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{withOrphans(ownedNamespace(t))}}
			},
			wantRelease: true,
		},
		{
			name: "upstream gone, downstream objects left: kept",
			objs: func(t *testing.T) testObjects {
				objs := owned(t)
				objs.downstream = []*unstructured.Unstructured{syncedCopy(t, upstreamDeployment("web"))}
				return objs
			},
		},
		{
			name: "upstream removing, its upstream namespace still holds synced objects: kept",
			objs: func(t *testing.T) testObjects {
				objs := withUpstream([]*corev1.Namespace{upstreamNS(beingRemoved)}, nil)(t)
				objs.upstream = []*unstructured.Unstructured{upstreamConfigMap("web")}
				return objs
			},
		},
		{
			name: "upstream gone, synced objects only in other upstream namespaces: deleted",
			objs: func(t *testing.T) testObjects {
				other := upstreamConfigMap("web")
				other.SetNamespace("other")
				objs := owned(t)
				objs.upstream = []*unstructured.Unstructured{other}
				return objs
			},
			wantDelete: true,
		},
		{
			name: "another workspace's caches never synced: neither blocks nor triggers",
			objs: owned,
			prepare: func(t *testing.T, env *testEnv) {
				e := env.engine
				e.upstreamWorkspaces["root:org:broken"] = &upstreamWorkspace{dynamic: env.upstreamDynamic, stopEvents: func() {},
					namespaces: &informerHandle{lister: cache.NewGenericLister(newIndexer(), namespacesResource), hasSynced: func() bool { return false }}}
				e.upstreamInformers[upstreamInformerKey{workspace: "root:org:broken", gvr: configMapsGVR}] = &informerHandle{
					lister: cache.NewGenericLister(newIndexer(), configMapsGVR.GroupResource()), hasSynced: func() bool { return false }}
			},
			wantDelete: true,
		},
		{
			name: "this workspace's upstream namespace cache not synced: kept",
			objs: owned,
			prepare: func(t *testing.T, env *testEnv) {
				env.engine.upstreamWorkspaces[testWorkspace].namespaces.hasSynced = func() bool { return false }
			},
			wantErr: notYetDecided,
		},
		{
			name: "this workspace's upstream object cache not synced: kept",
			objs: owned,
			prepare: func(t *testing.T, env *testEnv) {
				env.engine.upstreamInformers[upstreamInformerKey{workspace: testWorkspace, gvr: configMapsGVR}].hasSynced = func() bool { return false }
			},
			wantErr: notYetDecided,
		},
		{
			name:               "object informers not synced (startup): kept",
			objs:               owned,
			informersNotSynced: true,
			wantErr:            notYetDecided,
		},
		{
			name:              "namespace informer not synced (startup): kept",
			objs:              owned,
			namespacesNotSync: true,
			wantErr:           notYetDecided,
		},
		{
			name: "before the first successful discovery (no object informers): kept",
			objs: func(t *testing.T) testObjects {
				objs := owned(t)
				objs.downstreamLiveOnly = []*unstructured.Unstructured{syncedCopy(t, upstreamDeployment("web"))}
				return objs
			},
			notReconciled: true,
			wantErr:       notYetDecided,
		},
		{
			name:             "a requested type is unauthorized (its objects are invisible): kept",
			objs:             owned,
			unauthorizedType: true,
			wantErr:          notYetDecided,
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
			name: "namespace of a workspace no longer watched: kept (its upstream cannot be read), looked at again",
			objs: func(t *testing.T) testObjects {
				return testObjects{namespaces: []*corev1.Namespace{downstreamNamespace(t, goneNS, goneWorkspace)}}
			},
			namespace: goneNS,
			wantErr:   notYetDecided,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.objs(t))
			env.informersSynced.Store(!tc.informersNotSynced)
			env.namespacesSynced.Store(!tc.namespacesNotSync)
			budget := &namespaceTestBudget{allow: !tc.budgetDenies}
			env.namespaces.budget = budget
			env.namespaces.targetDeleting = func() bool { return tc.targetDeleting }
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
			if tc.prepare != nil {
				tc.prepare(t, env)
			}
			name := tc.namespace
			if name == "" {
				name = dsNS
			}
			err := env.namespaces.clean(t.Context(), name)
			var wait *notYetError
			switch {
			case tc.wantErr == "" && err != nil, tc.wantErr != "" && err == nil:
				t.Errorf("got error %v, want %q", err, tc.wantErr)
			case tc.wantErr == notYetDecided && !errors.As(err, &wait):
				t.Errorf("got error %v, want a decision put off until later", err)
			case tc.wantErr == failed && errors.As(err, &wait):
				t.Errorf("got %v, want an error the queue retries", err)
			}
			switch {
			case tc.wantRelease:
				expectWrites(t, "downstream kube", env.downstreamKube.Actions(), []string{"patch namespaces"})
				expectNamespaceRelease(t, env, name)
			case tc.wantMark:
				expectWrites(t, "downstream kube", env.downstreamKube.Actions(), []string{"patch namespaces"})
				got, err := env.downstreamKube.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
				if err != nil || got.Annotations[workloadv1alpha1.PlacedNamespaceAnnotation] != "true" {
					t.Errorf("downstream namespace not marked as placed: %v %v", got.GetAnnotations(), err)
				}
			case tc.wantDelete:
				expectWrites(t, "downstream kube", env.downstreamKube.Actions(), []string{"delete namespaces"})
				expectNamespaceDelete(t, env, name)
				if len(budget.asked) != 1 || budget.asked[0].reason != deletionNamespaceCleanup || budget.asked[0].objects != 0 || budget.asked[0].name != name {
					t.Errorf("budget asked %+v, want one namespace-cleanup deletion of %s with 0 objects", budget.asked, name)
				}
			default:
				expectWrites(t, "downstream kube", env.downstreamKube.Actions(), nil)
			}
		})
	}
}

func expectNamespaceDelete(t *testing.T, env *testEnv, name string) {
	t.Helper()
	del := findAction[clienttesting.DeleteActionImpl](t, env.downstreamKube.Actions(), "delete", "namespaces")
	if del.GetName() != name {
		t.Errorf("deleted namespace %q, want %q", del.GetName(), name)
	}
	if pre := del.DeleteOptions.Preconditions; pre == nil || pre.UID == nil || string(*pre.UID) != "uid-"+name {
		t.Errorf("got preconditions %+v, want the UID of the cached namespace", pre)
	}
}

func expectNamespaceRelease(t *testing.T, env *testEnv, name string) {
	t.Helper()
	patch := findAction[clienttesting.PatchActionImpl](t, env.downstreamKube.Actions(), "patch", "namespaces")
	if patch.GetName() != name || patch.GetPatchType() != types.MergePatchType {
		t.Fatalf("patched %q with %s, want a merge patch of %q", patch.GetName(), patch.GetPatchType(), name)
	}
	var body struct {
		Metadata struct {
			ResourceVersion string             `json:"resourceVersion"`
			Labels          map[string]*string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(patch.GetPatch(), &body); err != nil {
		t.Fatal(err)
	}
	value, ok := body.Metadata.Labels[workloadv1alpha1.InternalDownstreamClusterLabel]
	if !ok || value != nil || body.Metadata.ResourceVersion != "11" {
		t.Errorf("release patch %s, want the ownership label removed with resourceVersion 11 as precondition", patch.GetPatch())
	}
}
