package syncer

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corelisters "k8s.io/client-go/listers/core/v1"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer/transform"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/tmc"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// preExisting is upstream's copy as someone created it by hand downstream: the same
// content, none of the syncer's keys, other managers' fields.
func preExisting(t *testing.T, upstream *unstructured.Unstructured, opts ...objectOption) *unstructured.Unstructured {
	t.Helper()
	obj := syncedCopy(t, upstream)
	labels := obj.GetLabels()
	delete(labels, workloadv1alpha1.InternalDownstreamClusterLabel)
	obj.SetLabels(labels)
	obj.SetAnnotations(nil)
	obj.SetUID("pre-existing-uid")
	obj.SetResourceVersion("42")
	withField("set by hand", "data", "extra")(obj)
	for _, o := range opts {
		o(obj)
	}
	return obj
}

func TestSpecConflictPolicy(t *testing.T) {
	const (
		abort        = workloadv1alpha1.ConflictPolicyAbort
		adoptIfEqual = workloadv1alpha1.ConflictPolicyAdoptIfEqual
		overwrite    = workloadv1alpha1.ConflictPolicyOverwrite
	)
	policy := func(p workloadv1alpha1.ConflictPolicy) objectOption {
		return withAnnotation(workloadv1alpha1.ConflictPolicyAnnotation, string(p))
	}
	edited := withField("edited downstream", "data", "key")
	tests := []struct {
		name         string
		upstream     []objectOption
		downstream   []objectOption
		targetPolicy workloadv1alpha1.ConflictPolicy // the SyncTarget's spec.conflictPolicy
		// namespaces replaces the namespace cache the conflict policy checks (not the one
		// the namespace ensure reads).
		namespaces []*corev1.Namespace

		wantAdopted    workloadv1alpha1.ConflictPolicy // "": left untouched, a ResourceConflict
		wantEvents     []string
		wantMessageHas string
	}{
		{
			name:           "no policy anywhere: Abort",
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: workloadv1alpha1.ConflictPolicyAnnotation,
		},
		{
			name:         "object says Abort, SyncTarget says Overwrite: the object wins",
			upstream:     []objectOption{policy(abort)},
			targetPolicy: overwrite,
			wantEvents:   []string{"Warning ResourceConflict"},
		},
		{
			name:        "AdoptIfEqual, equal: adopted",
			upstream:    []objectOption{policy(adoptIfEqual)},
			wantAdopted: adoptIfEqual,
			wantEvents:  []string{"Normal Adopted"},
		},
		{
			name:         "AdoptIfEqual from the SyncTarget, equal: adopted",
			targetPolicy: adoptIfEqual,
			wantAdopted:  adoptIfEqual,
			wantEvents:   []string{"Normal Adopted"},
		},
		{
			name:           "AdoptIfEqual, a field differs: untouched, the field named",
			upstream:       []objectOption{policy(adoptIfEqual)},
			downstream:     []objectOption{edited},
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: "differ from the upstream object's at data.key",
		},
		{
			name:           "AdoptIfEqual, a user label missing: untouched",
			upstream:       []objectOption{policy(adoptIfEqual)},
			downstream:     []objectOption{func(u *unstructured.Unstructured) { u.SetLabels(nil) }},
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: "metadata.labels",
		},
		{
			name:        "Overwrite, different: adopted and applied",
			upstream:    []objectOption{policy(overwrite)},
			downstream:  []objectOption{edited},
			wantAdopted: overwrite,
			wantEvents:  []string{"Normal Adopted"},
		},
		{
			name:         "Overwrite from the SyncTarget: adopted",
			downstream:   []objectOption{edited},
			targetPolicy: overwrite,
			wantAdopted:  overwrite,
			wantEvents:   []string{"Normal Adopted"},
		},
		{
			name:           "unknown value on the object: Abort and a Warning, whatever the SyncTarget says",
			upstream:       []objectOption{withAnnotation(workloadv1alpha1.ConflictPolicyAnnotation, "Adopt")},
			targetPolicy:   overwrite,
			wantEvents:     []string{"Warning InvalidConflictPolicy", "Warning ResourceConflict"},
			wantMessageHas: `"Adopt"`,
		},
		{
			name:           "Overwrite, owned by another SyncTarget: untouched",
			upstream:       []objectOption{policy(overwrite)},
			downstream:     []objectOption{withLabel(workloadv1alpha1.InternalDownstreamClusterLabel, otherStKey)},
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: "another SyncTarget owns it",
		},
		{
			name:           "Overwrite, being deleted: untouched",
			upstream:       []objectOption{policy(overwrite)},
			downstream:     []objectOption{deleting},
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: "being deleted",
		},
		{
			name:     "Overwrite, namespace without our ownership label: untouched",
			upstream: []objectOption{policy(overwrite)},
			namespaces: []*corev1.Namespace{func() *corev1.Namespace {
				ns := ownedNamespace(t)
				delete(ns.Labels, workloadv1alpha1.InternalDownstreamClusterLabel)
				return ns
			}()},
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: "does not carry",
		},
		{
			name:           "Overwrite, namespace of another locator: untouched",
			upstream:       []objectOption{policy(overwrite)},
			namespaces:     []*corev1.Namespace{downstreamNamespace(t, downstreamNamespaceFor(t, testWorkspace, testNamespace), testLocator("root:org:team-b", testNamespace))},
			wantEvents:     []string{"Warning ResourceConflict"},
			wantMessageHas: "another namespace locator",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := upstreamConfigMap("web", tc.upstream...)
			env := newTestEnv(t, testObjects{
				upstream:           []*unstructured.Unstructured{up},
				downstreamLiveOnly: []*unstructured.Unstructured{preExisting(t, up, tc.downstream...)},
				namespaces:         []*corev1.Namespace{ownedNamespace(t)},
			})
			env.spec.targetConflictPolicy = func() workloadv1alpha1.ConflictPolicy { return tc.targetPolicy }
			if tc.namespaces != nil {
				indexer := newIndexer()
				for _, ns := range tc.namespaces {
					if err := indexer.Add(ns); err != nil {
						t.Fatal(err)
					}
				}
				env.spec.downstreamNamespaces = func() corelisters.NamespaceLister { return corelisters.NewNamespaceLister(indexer) }
			}

			_, err := env.spec.reconcile(t.Context(), webKey)
			events := env.events()
			expectEvents(t, events, tc.wantEvents)
			if tc.wantMessageHas != "" && !strings.Contains(strings.Join(events, "\n"), tc.wantMessageHas) {
				t.Errorf("no event mentions %q: %q", tc.wantMessageHas, events)
			}
			adoptions := func(p workloadv1alpha1.ConflictPolicy) float64 {
				return testutil.ToFloat64(env.metrics.adoptions.WithLabelValues(testSyncTargetName, string(p)))
			}
			conflicts := testutil.ToFloat64(env.metrics.conflicts.WithLabelValues(testSyncTargetName, testWorkspace, "configmaps/v1"))
			if tc.wantAdopted == "" {
				expectProcessError(t, 0, err, tmc.TMCErrorTypeResourceConflict, false)
				expectWrites(t, "downstream", env.downstreamDynamic.Actions(), nil)
				if conflicts != 1 || adoptions(adoptIfEqual)+adoptions(overwrite) != 0 {
					t.Errorf("got %v conflicts and %v+%v adoptions counted, want 1 and none", conflicts, adoptions(adoptIfEqual), adoptions(overwrite))
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			expectWrites(t, "downstream", env.downstreamDynamic.Actions(), []string{"patch configmaps"})
			expectAdoptingApply(t, env)
			if got := adoptions(tc.wantAdopted); got != 1 || conflicts != 0 {
				t.Errorf("got %v %s adoptions and %v conflicts counted, want 1 and none", got, tc.wantAdopted, conflicts)
			}
		})
	}
}

// expectAdoptingApply checks the apply that takes ownership: our field manager, the
// ownership label and spec hash, the upstream data, and the resourceVersion that was
// compared as a precondition.
func expectAdoptingApply(t *testing.T, env *testEnv) {
	t.Helper()
	patch := findAction[clienttesting.PatchActionImpl](t, env.downstreamDynamic.Actions(), "patch", "configmaps")
	if patch.PatchOptions.FieldManager != FieldManager || patch.PatchOptions.Force == nil || !*patch.PatchOptions.Force {
		t.Errorf("got patch options %+v, want a forced apply by %s", patch.PatchOptions, FieldManager)
	}
	applied := decodePatch(t, patch.GetPatch())
	if got := applied.GetLabels()[workloadv1alpha1.InternalDownstreamClusterLabel]; got != testStKey {
		t.Errorf("the apply sets the ownership label to %q, want %q", got, testStKey)
	}
	if applied.GetAnnotations()[transform.SpecHashAnnotation] == "" {
		t.Errorf("the apply carries no spec hash: %v", applied.GetAnnotations())
	}
	if got := applied.GetResourceVersion(); got != "42" {
		t.Errorf("the apply carries resourceVersion %q, want the compared one (42)", got)
	}
	if v, _, _ := unstructured.NestedString(applied.Object, "data", "key"); v != "value" {
		t.Errorf("the apply sets data.key=%q, want value", v)
	}
}

// The namespace guard on its own: only the namespace computed from the locator, carrying
// that locator and our ownership label, may hold an adopted object.
func TestConflictNotOurNamespace(t *testing.T) {
	locator := testLocator(testWorkspace, testNamespace)
	name := downstreamNamespaceFor(t, testWorkspace, testNamespace)
	lister := func(namespaces ...*corev1.Namespace) corelisters.NamespaceLister {
		indexer := newIndexer()
		for _, ns := range namespaces {
			if err := indexer.Add(ns); err != nil {
				t.Fatal(err)
			}
		}
		return corelisters.NewNamespaceLister(indexer)
	}
	unlabelled := ownedNamespace(t)
	unlabelled.Labels = nil
	tests := []struct {
		name      string
		lister    corelisters.NamespaceLister
		namespace string
		want      string // "" or a part of the reason
	}{
		{"ours", lister(ownedNamespace(t)), name, ""},
		{"not the computed name", lister(downstreamNamespace(t, "kcp-elsewhere", locator)), "kcp-elsewhere", "not the one computed"},
		{"not watched yet", nil, name, "not watched"},
		{"not in the cache", lister(), name, "not in the cache"},
		{"without our ownership label", lister(unlabelled), name, "does not carry"},
		{"another locator", lister(downstreamNamespace(t, name, testLocator("root:org:team-b", testNamespace))), name, "another namespace locator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := notOurNamespace(tc.lister, testStKey, locator, tc.namespace)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("notOurNamespace = %q, want %q", got, tc.want)
			}
		})
	}

	// A namespace TMC created under its earlier name (before kcp's leading zeros) stays in
	// use, so objects in it can be adopted too; kcp's name works as well.
	zeroNS, kcpName, legacyName := zeroHashNamespace(t)
	zeroLocator := testLocator(testWorkspace, zeroNS)
	for _, name := range []string{kcpName, legacyName} {
		if got := notOurNamespace(lister(downstreamNamespace(t, name, zeroLocator)), testStKey, zeroLocator, name); got != "" {
			t.Errorf("notOurNamespace(%s) = %q, want none", name, got)
		}
	}
}
