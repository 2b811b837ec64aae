package syncer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

const (
	testPolicyName = "tmc-syncer-east-12345678"
	testSyncerUser = "system:serviceaccount:tmc-syncer-east:tmc-syncer-east"
)

type confinementFixture struct {
	kube     *kubefake.Clientset
	recorder *record.FakeRecorder
	metrics  *syncerMetrics
	checker  *confinementChecker
}

// newConfinementFixture serves the generated policy and binding for testSyncerUser on a fake
// physical cluster.
func newConfinementFixture(t *testing.T) *confinementFixture {
	t.Helper()
	objs := syncerrbac.AdmissionPolicy(syncerrbac.Downstream{
		ClusterObjectName: testPolicyName, Namespace: "tmc-syncer-east", UserName: testSyncerUser,
		Subject:        rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "tmc-syncer-east", Namespace: "tmc-syncer-east"},
		SyncTargetName: testSyncTargetName, SyncTargetKey: testStKey,
	})
	f := &confinementFixture{kube: kubefake.NewClientset(objs...), recorder: record.NewFakeRecorder(10), metrics: newSyncerMetrics(testSyncTargetName)}
	f.kube.PrependReactor("create", "selfsubjectreviews", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, &authenticationv1.SelfSubjectReview{Status: authenticationv1.SelfSubjectReviewStatus{
			UserInfo: authenticationv1.UserInfo{Username: testSyncerUser},
		}}, nil
	})
	target := syncTarget{workspace: testLocationWorkspace, name: testSyncTargetName, key: testStKey, uid: testSyncTargetUID}
	f.checker = newConfinementChecker(target, testPolicyName, f.kube, f.metrics, f.recorder)
	return f
}

func (f *confinementFixture) expect(t *testing.T, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	c, ok := f.checker.condition(t.Context())
	if !ok {
		t.Fatal("no verdict")
	}
	if c.Type != workloadv1alpha1.SyncTargetSyncerConfined || c.Status != status || c.Reason != reason {
		t.Fatalf("got %s=%s (%s): %s, want %s (%s)", c.Type, c.Status, c.Reason, c.Message, status, reason)
	}
	want := 0.0
	if status == metav1.ConditionTrue {
		want = 1
	}
	if got := testutil.ToFloat64(f.metrics.confined.WithLabelValues(testSyncTargetName)); got != want {
		t.Errorf("syncer_confined = %v, want %v", got, want)
	}
	return c
}

func (f *confinementFixture) events() []string { return drainEvents(f.recorder) }

func TestConfinementTransitions(t *testing.T) {
	f := newConfinementFixture(t)
	ctx := t.Context()
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events %v for a syncer confined from the start, want none", ev)
	}

	bindings := f.kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	binding, err := bindings.Get(ctx, testPolicyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bindings.Delete(ctx, testPolicyName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c := f.expect(t, metav1.ConditionFalse, workloadv1alpha1.ReasonBindingMissing)
	if !strings.Contains(c.Message, "keeps syncing") {
		t.Errorf("message %q does not say that the syncer keeps syncing", c.Message)
	}
	f.expect(t, metav1.ConditionFalse, workloadv1alpha1.ReasonBindingMissing)
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning BindingMissing ") {
		t.Errorf("events %v, want one Warning BindingMissing for the transition", ev)
	}

	if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal Confined ") {
		t.Errorf("events %v, want one Normal Confined", ev)
	}
}

func TestConfinementVerdicts(t *testing.T) {
	forbidden := apierrors.NewForbidden(admissionregistrationv1.Resource("validatingadmissionpolicies"), testPolicyName, errors.New("no"))
	for name, tc := range map[string]struct {
		setup  func(t *testing.T, f *confinementFixture)
		reason string
	}{
		"policy deleted": {func(t *testing.T, f *confinementFixture) {
			if err := f.kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(t.Context(), testPolicyName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, workloadv1alpha1.ReasonPolicyMissing},
		"policy for another user": {func(t *testing.T, f *confinementFixture) {
			policies := f.kube.AdmissionregistrationV1().ValidatingAdmissionPolicies()
			p, _ := policies.Get(t.Context(), testPolicyName, metav1.GetOptions{})
			p.Spec.MatchConditions[0].Expression = "request.userInfo.username == 'someone-else'"
			if _, err := policies.Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, workloadv1alpha1.ReasonPolicyMissing},
		"binding audits only": {func(t *testing.T, f *confinementFixture) {
			bindings := f.kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
			b, _ := bindings.Get(t.Context(), testPolicyName, metav1.GetOptions{})
			b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}
			if _, err := bindings.Update(t.Context(), b, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, workloadv1alpha1.ReasonBindingMissing},
		"may not read the policy": {func(t *testing.T, f *confinementFixture) {
			f.kube.PrependReactor("get", "validatingadmissionpolicies", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, forbidden
			})
		}, workloadv1alpha1.ReasonConfinementNotVerifiable},
		"may not review itself": {func(t *testing.T, f *confinementFixture) {
			f.checker.whoAmI = func(context.Context) (string, error) { return "", forbidden }
		}, workloadv1alpha1.ReasonConfinementNotVerifiable},
	} {
		t.Run(name, func(t *testing.T) {
			f := newConfinementFixture(t)
			tc.setup(t, f)
			f.expect(t, metav1.ConditionFalse, tc.reason)
			if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+tc.reason+" ") {
				t.Errorf("events %v, want one Warning %s", ev, tc.reason)
			}
		})
	}
}

func TestConfinementKeepsTheLastVerdictWhenTheClusterDoesNotAnswer(t *testing.T) {
	f := newConfinementFixture(t)
	down := true
	f.kube.PrependReactor("get", "validatingadmissionpolicies", func(clienttesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, apierrors.NewServiceUnavailable("down")
		}
		return false, nil, nil
	})
	if c, ok := f.checker.condition(t.Context()); ok {
		t.Fatalf("got %+v with the cluster unreachable before any verdict, want none", c)
	}
	down = false
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	down = true
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events %v, want none", ev)
	}
}

func TestStatusReportsSyncerConfined(t *testing.T) {
	env := newTestEnv(t, testObjects{})
	f := newConfinementFixture(t)
	env.reporter.confinement = f.checker
	conds := env.reporter.buildStatus(t.Context(), nil)["conditions"].([]metav1.Condition)
	if c := meta.FindStatusCondition(conds, workloadv1alpha1.SyncTargetSyncerConfined); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("conditions %+v, want SyncerConfined=True", conds)
	}
}

// Between rechecks the last verdict is reused: an idle syncer does not GET its policy and
// binding with every heartbeat.
func TestConfinementRecheckReusesTheVerdict(t *testing.T) {
	f := newConfinementFixture(t)
	f.checker.everyNthHeartbeat(time.Hour, confinementRecheckHeartbeats)
	gets := func() int {
		n := 0
		for _, a := range f.kube.Actions() {
			if a.GetVerb() == "get" {
				n++
			}
		}
		return n
	}
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	first := gets()
	if first == 0 {
		t.Fatal("the first check read nothing")
	}
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	if got := gets(); got != first {
		t.Errorf("a second heartbeat within the recheck interval made %d more GETs, want 0", got-first)
	}
	f.checker.recheck = 0
	f.expect(t, metav1.ConditionTrue, workloadv1alpha1.ReasonSyncerConfined)
	if got := gets(); got == first {
		t.Error("with the recheck interval over, the policy was not read again")
	}
}
