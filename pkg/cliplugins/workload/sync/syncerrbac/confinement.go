package syncerrbac

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ownLeaseVariable is the policy variable that lets the syncer write its Lease; its
// expression names the syncer's namespace.
const ownLeaseVariable = "ownLease"

// CheckAdmissionPolicy reports whether policy, as read back from the physical cluster,
// still confines userName as AdmissionPolicy generated it for the SyncTarget key
// syncTargetKey: failure policy Fail, every write matched (only the self-reviews excluded,
// no namespace or object selector), the one match condition on userName, and the
// generated variables and validations. The syncer's namespace is read from the policy
// itself. Fields the API server defaults (match policy, rule scope) are accepted as
// defaulted. The error says what differs.
func CheckAdmissionPolicy(policy *admissionregistrationv1.ValidatingAdmissionPolicy, userName, syncTargetKey string) error {
	namespace, err := leaseNamespace(policy)
	if err != nil {
		return err
	}
	want := AdmissionPolicy(Downstream{
		ClusterObjectName: policy.Name, Namespace: namespace, UserName: userName, SyncTargetKey: syncTargetKey,
	})[0].(*admissionregistrationv1.ValidatingAdmissionPolicy).Spec
	got := policy.Spec
	var errs []error
	if got.FailurePolicy != nil && *got.FailurePolicy != admissionregistrationv1.Fail {
		errs = append(errs, fmt.Errorf("failure policy is %s, not Fail", *got.FailurePolicy))
	}
	if err := checkMatchConstraints(got.MatchConstraints, want.MatchConstraints); err != nil {
		errs = append(errs, err)
	}
	if !slices.Equal(got.MatchConditions, want.MatchConditions) {
		errs = append(errs, fmt.Errorf("its match conditions are not the one on user %s", userName))
	}
	if !slices.Equal(got.Variables, want.Variables) {
		errs = append(errs, fmt.Errorf("its variables are not those generated for SyncTarget key %s", syncTargetKey))
	}
	if !slices.EqualFunc(got.Validations, want.Validations, func(a, b admissionregistrationv1.Validation) bool {
		return a.Expression == b.Expression
	}) {
		errs = append(errs, errors.New("its validations are not those generated"))
	}
	return errors.Join(errs...)
}

// CheckAdmissionPolicyBinding reports whether binding binds policyName as generated: the
// Deny action, no parameters, and no match resources narrowing the policy.
func CheckAdmissionPolicyBinding(binding *admissionregistrationv1.ValidatingAdmissionPolicyBinding, policyName string) error {
	var errs []error
	if binding.Spec.PolicyName != policyName {
		errs = append(errs, fmt.Errorf("it binds policy %q, not %q", binding.Spec.PolicyName, policyName))
	}
	if !slices.Contains(binding.Spec.ValidationActions, admissionregistrationv1.Deny) {
		errs = append(errs, fmt.Errorf("its validation actions %v do not include Deny", binding.Spec.ValidationActions))
	}
	if binding.Spec.ParamRef != nil {
		errs = append(errs, errors.New("it has a paramRef (the generated binding has none)"))
	}
	if m := binding.Spec.MatchResources; m != nil && (len(m.ResourceRules) > 0 || len(m.ExcludeResourceRules) > 0 ||
		!emptySelector(m.NamespaceSelector) || !emptySelector(m.ObjectSelector)) {
		errs = append(errs, errors.New("its matchResources narrow the policy (the generated binding has none)"))
	}
	return errors.Join(errs...)
}

func checkMatchConstraints(got, want *admissionregistrationv1.MatchResources) error {
	if got == nil {
		return errors.New("it has no match constraints")
	}
	var errs []error
	if !slices.EqualFunc(got.ResourceRules, want.ResourceRules, sameRule) {
		errs = append(errs, errors.New("its resource rules do not match every write"))
	}
	if !slices.EqualFunc(got.ExcludeResourceRules, want.ExcludeResourceRules, sameRule) {
		errs = append(errs, errors.New("it excludes more than the self-reviews"))
	}
	if !emptySelector(got.NamespaceSelector) || !emptySelector(got.ObjectSelector) {
		errs = append(errs, errors.New("a namespace or object selector narrows it"))
	}
	return errors.Join(errs...)
}

// sameRule compares two rules as the API server stores them: a nil scope is defaulted to
// "*".
func sameRule(a, b admissionregistrationv1.NamedRuleWithOperations) bool {
	scope := func(s *admissionregistrationv1.ScopeType) admissionregistrationv1.ScopeType {
		if s == nil {
			return admissionregistrationv1.AllScopes
		}
		return *s
	}
	return slices.Equal(a.ResourceNames, b.ResourceNames) && slices.Equal(a.Operations, b.Operations) &&
		slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.APIVersions, b.APIVersions) &&
		slices.Equal(a.Resources, b.Resources) && scope(a.Scope) == scope(b.Scope)
}

func emptySelector(s *metav1.LabelSelector) bool {
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// leaseNamespace reads the syncer's namespace from the policy's ownLease variable.
func leaseNamespace(policy *admissionregistrationv1.ValidatingAdmissionPolicy) (string, error) {
	const prefix = "request.namespace == '"
	for _, v := range policy.Spec.Variables {
		if v.Name != ownLeaseVariable {
			continue
		}
		rest, ok := strings.CutPrefix(v.Expression, prefix)
		if namespace, _, found := strings.Cut(rest, "'"); ok && found && namespace != "" {
			return namespace, nil
		}
		return "", fmt.Errorf("its %s variable is not the generated one", ownLeaseVariable)
	}
	return "", fmt.Errorf("it has no %s variable", ownLeaseVariable)
}
