package syncerrbac

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func generatedPolicy(t *testing.T) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	t.Helper()
	objs := AdmissionPolicy(Downstream{
		ClusterObjectName: "tmc-syncer-east-12345678", Namespace: "tmc-syncer-east",
		UserName: "system:serviceaccount:tmc-syncer-east:tmc-syncer-east", SyncTargetName: "east", SyncTargetKey: "key123",
	})
	return objs[0].(*admissionregistrationv1.ValidatingAdmissionPolicy), objs[1].(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
}

const generatedUser = "system:serviceaccount:tmc-syncer-east:tmc-syncer-east"

func TestCheckAdmissionPolicyAcceptsTheGeneratedOne(t *testing.T) {
	policy, binding := generatedPolicy(t)
	if err := CheckAdmissionPolicy(policy, generatedUser, "key123"); err != nil {
		t.Errorf("generated policy rejected: %v", err)
	}
	if err := CheckAdmissionPolicyBinding(binding, policy.Name); err != nil {
		t.Errorf("generated binding rejected: %v", err)
	}
	// As the API server stores them: defaulted scope, match policy, selectors, binding
	// match resources.
	stored := policy.DeepCopy()
	stored.Spec.MatchConstraints.MatchPolicy = ptr.To(admissionregistrationv1.Equivalent)
	stored.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{}
	stored.Spec.MatchConstraints.ObjectSelector = &metav1.LabelSelector{}
	for i := range stored.Spec.MatchConstraints.ResourceRules {
		stored.Spec.MatchConstraints.ResourceRules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
	}
	for i := range stored.Spec.MatchConstraints.ExcludeResourceRules {
		stored.Spec.MatchConstraints.ExcludeResourceRules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
	}
	if err := CheckAdmissionPolicy(stored, generatedUser, "key123"); err != nil {
		t.Errorf("defaulted policy rejected: %v", err)
	}
	storedBinding := binding.DeepCopy()
	storedBinding.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{}, ObjectSelector: &metav1.LabelSelector{}, MatchPolicy: ptr.To(admissionregistrationv1.Equivalent),
	}
	if err := CheckAdmissionPolicyBinding(storedBinding, policy.Name); err != nil {
		t.Errorf("defaulted binding rejected: %v", err)
	}
}

func TestCheckAdmissionPolicyRejectsChanges(t *testing.T) {
	for name, tc := range map[string]struct {
		user, key string
		mutate    func(p *admissionregistrationv1.ValidatingAdmissionPolicy)
		want      string
	}{
		"another user": {user: "system:serviceaccount:x:y", want: "match conditions"},
		"another key":  {key: "other", want: "variables"},
		"ignore on failure": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		}, want: "failure policy"},
		"narrowed by a selector": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		}, want: "selector"},
		"creates only": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
		}, want: "resource rules"},
		"more exclusions": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints.ExcludeResourceRules = append(p.Spec.MatchConstraints.ExcludeResourceRules, selfReviews("", "configmaps"))
		}, want: "excludes"},
		"an extra match condition": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConditions = append(p.Spec.MatchConditions, admissionregistrationv1.MatchCondition{Name: "never", Expression: "false"})
		}, want: "match conditions"},
		"a validation opened": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Validations[1].Expression = "true"
		}, want: "validations"},
		"lease anywhere": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.Variables[len(p.Spec.Variables)-1].Expression = "true"
		}, want: "ownLease"},
		"no constraints": {mutate: func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
			p.Spec.MatchConstraints = nil
		}, want: "no match constraints"},
	} {
		t.Run(name, func(t *testing.T) {
			policy, _ := generatedPolicy(t)
			user, key := generatedUser, "key123"
			if tc.user != "" {
				user = tc.user
			}
			if tc.key != "" {
				key = tc.key
			}
			if tc.mutate != nil {
				tc.mutate(policy)
			}
			err := CheckAdmissionPolicy(policy, user, key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckAdmissionPolicy = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestCheckAdmissionPolicyBindingRejectsChanges(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding)
		want   string
	}{
		"another policy": {func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) { b.Spec.PolicyName = "other" }, "binds policy"},
		"audit only": {func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}
		}, "Deny"},
		"params": {func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "x"}
		}, "paramRef"},
		"narrowed": {func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			b.Spec.MatchResources = &admissionregistrationv1.MatchResources{ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}
		}, "matchResources"},
	} {
		t.Run(name, func(t *testing.T) {
			policy, binding := generatedPolicy(t)
			tc.mutate(binding)
			err := CheckAdmissionPolicyBinding(binding, policy.Name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckAdmissionPolicyBinding = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestClusterObjectNameIsPerWorkspace(t *testing.T) {
	a, b := ClusterObjectName("root:org:a", "east"), ClusterObjectName("root:org:b", "east")
	if a == b || !strings.HasPrefix(a, "tmc-syncer-east-") || len(a) != len("tmc-syncer-east-")+8 {
		t.Errorf("ClusterObjectName = %q and %q, want distinct tmc-syncer-east-<8 hex>", a, b)
	}
}
