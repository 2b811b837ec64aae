package syncer

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

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
			name: "released earlier (orphans, no ownership label) with our locator: not used again",
			objs: func(t *testing.T) testObjects {
				ns := ownedNamespace(t)
				delete(ns.Labels, workloadv1alpha1.InternalDownstreamClusterLabel)
				return testObjects{namespacesLiveOnly: []*corev1.Namespace{ns}}
			},
			wantErr:     true,
			wantErrType: tmc.TMCErrorTypeNamespaceCollision,
			wantWrites:  []string{"create namespaces"},
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

// A downstream namespace created for a namespace placed by its label records it, so that
// losing the label later removes it; one created for objects labelled by hand does not.
func TestNamespaceEnsureRecordsPlacement(t *testing.T) {
	dsNS := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	for _, tc := range []struct {
		name       string
		upstream   []*corev1.Namespace
		wantMarked bool
	}{
		{name: "upstream namespace placed by its label", upstream: []*corev1.Namespace{upstreamNS()}, wantMarked: true},
		{name: "upstream namespace not labelled (objects labelled by hand)"},
		{name: "upstream namespace being removed from this target", upstream: []*corev1.Namespace{upstreamNS(beingRemoved)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, testObjects{upstreamNamespaces: tc.upstream})
			if err := env.namespaces.ensure(t.Context(), testLocator(testWorkspace, testNamespace), dsNS); err != nil {
				t.Fatal(err)
			}
			got, err := env.downstreamKube.CoreV1().Namespaces().Get(t.Context(), dsNS, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if marked := got.Annotations[workloadv1alpha1.PlacedNamespaceAnnotation] == "true"; marked != tc.wantMarked {
				t.Errorf("marked %v, want %v (annotations %v)", marked, tc.wantMarked, got.Annotations)
			}
		})
	}
}

// An upstream namespace whose locator hash starts with a zero byte: kcp's name for its
// downstream namespace has a leading "0" that TMC's earlier name lacked.
func zeroHashNamespace(t *testing.T) (ns, kcpName, legacyName string) {
	t.Helper()
	for i := range 5000 {
		ns = fmt.Sprintf("ns-%d", i)
		legacy, differs, err := testLocator(testWorkspace, ns).LegacyDownstreamNamespaceName()
		if err != nil {
			t.Fatal(err)
		}
		if differs {
			return ns, downstreamNamespaceFor(t, testWorkspace, ns), legacy
		}
	}
	t.Fatal("no locator with a leading zero byte found")
	return "", "", ""
}

// The guard: a downstream namespace created under the legacy name keeps being used, so an
// upgrade never moves workloads away from their volumes; new namespaces get kcp's name.
func TestNamespaceDownstreamNameKeepsLegacyNamespaces(t *testing.T) {
	ns, kcpName, legacyName := zeroHashNamespace(t)
	locator := testLocator(testWorkspace, ns)

	env := newTestEnv(t, testObjects{})
	if got, err := env.namespaces.downstreamName(locator); err != nil || got != kcpName {
		t.Errorf("downstreamName without a legacy namespace = %q, %v; want kcp's %q", got, err, kcpName)
	}

	env = newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{downstreamNamespace(t, legacyName, locator)}})
	if got, err := env.namespaces.downstreamName(locator); err != nil || got != legacyName {
		t.Errorf("downstreamName with the legacy namespace present = %q, %v; want it kept, %q", got, err, legacyName)
	}

	// A namespace of the legacy name that belongs to another locator is not taken.
	other := downstreamNamespace(t, legacyName, testLocator(testWorkspace, "someone-else"))
	env = newTestEnv(t, testObjects{namespaces: []*corev1.Namespace{other}})
	if got, _ := env.namespaces.downstreamName(locator); got != kcpName {
		t.Errorf("downstreamName took a legacy-named namespace of another locator: %q", got)
	}
}
