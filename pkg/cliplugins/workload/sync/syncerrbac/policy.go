package syncerrbac

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// AdmissionPolicy returns the ValidatingAdmissionPolicy and its binding that confine the
// syncer (d.UserName) on the physical cluster, whatever its RBAC grants: it may write
// namespaced objects only in namespaces carrying its ownership label
// (internal.workload.kcp.io/cluster=<stKey>), create and delete only namespaces carrying
// that label, create, change and delete only PersistentVolumes carrying that label (a
// change may drop it: the Orphan deletion policy), write its leader-election Lease in its
// own namespace, and write no other cluster-scoped object. The one change of a namespace that may drop the label is its
// release: an owned namespace that records orphaned copies (DownstreamOrphansAnnotation)
// is handed over to its users. This is what lets the syncer run without cluster-admin (kcp's
// syncer needed "*" on every synced type in every namespace).
//
// The policy matches every resource and subresource, so permissions granted to the
// ServiceAccount later by someone else stay confined too. Only the self-reviews the syncer
// uses to check its own permissions are excluded: they write nothing.
func AdmissionPolicy(d Downstream) []runtime.Object {
	owned := func(obj string) string {
		return fmt.Sprintf("%[1]s != null && has(%[1]s.metadata.labels) && '%[2]s' in %[1]s.metadata.labels && %[1]s.metadata.labels['%[2]s'] == '%[3]s'",
			obj, workloadv1alpha1.InternalDownstreamClusterLabel, d.SyncTargetKey)
	}
	// released: no ownership label any more, and the record of orphaned copies.
	released := func(obj string) string {
		return fmt.Sprintf("%[1]s != null && !(has(%[1]s.metadata.labels) && '%[2]s' in %[1]s.metadata.labels) && "+
			"has(%[1]s.metadata.annotations) && '%[3]s' in %[1]s.metadata.annotations",
			obj, workloadv1alpha1.InternalDownstreamClusterLabel, workloadv1alpha1.DownstreamOrphansAnnotation)
	}
	label := workloadv1alpha1.InternalDownstreamClusterLabel + "=" + d.SyncTargetKey
	who := fmt.Sprintf("the workload-syncer of SyncTarget %s (%s)", d.SyncTargetName, d.UserName)

	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: objectMeta(d.ClusterObjectName, "", d.Labels),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{
							admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete,
							// pods/exec, attach and portforward (the pod tunnel): only in its namespaces.
							admissionregistrationv1.Connect,
						},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*/*"},
						},
					},
				}},
				ExcludeResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
					selfReviews("authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
					selfReviews("authentication.k8s.io", "selfsubjectreviews"),
				},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "syncer-service-account",
				Expression: fmt.Sprintf("request.userInfo.username == '%s'", d.UserName),
			}},
			Variables: []admissionregistrationv1.Variable{
				{Name: "isNamespace", Expression: "request.resource.group == '' && request.resource.resource == 'namespaces'"},
				{Name: "newObjectOwned", Expression: owned("object")},
				{Name: "oldObjectOwned", Expression: owned("oldObject")},
				{Name: "newObjectReleased", Expression: released("object")},
				{Name: "namespaceOwned", Expression: owned("namespaceObject")},
				{Name: "isVolume", Expression: "request.resource.group == '' && request.resource.resource == 'persistentvolumes'"},
				{Name: "newObjectUnlabelled", Expression: fmt.Sprintf("object != null && !(has(object.metadata.labels) && '%s' in object.metadata.labels)",
					workloadv1alpha1.InternalDownstreamClusterLabel)},
				{Name: ownLeaseVariable, Expression: fmt.Sprintf(
					"request.namespace == '%s' && request.resource.group == 'coordination.k8s.io' && request.resource.resource == 'leases'", d.Namespace)},
			},
			Validations: []admissionregistrationv1.Validation{
				{
					// A Namespace request carries the namespace's own name in
					// request.namespace and has no namespaceObject: check the object itself.
					Expression: "!variables.isNamespace || (request.operation == 'CREATE' ? variables.newObjectOwned : " +
						"(request.operation == 'DELETE' ? variables.oldObjectOwned : " +
						"variables.oldObjectOwned && (variables.newObjectOwned || variables.newObjectReleased)))",
					Message: fmt.Sprintf("%s may only create, change or delete namespaces labelled %s, and unlabel only those holding orphaned copies (%s)",
						who, label, workloadv1alpha1.DownstreamOrphansAnnotation),
					Reason: ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "!variables.isVolume || (request.operation == 'CREATE' ? variables.newObjectOwned : " +
						"(request.operation == 'DELETE' ? variables.oldObjectOwned : " +
						"variables.oldObjectOwned && (variables.newObjectOwned || variables.newObjectUnlabelled)))",
					Message: fmt.Sprintf("%s may only create, change or delete PersistentVolumes labelled %s, and unlabel only those", who, label),
					Reason:  ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "variables.isNamespace || variables.isVolume || request.namespace == '' || variables.namespaceOwned || variables.ownLease",
					Message:    fmt.Sprintf("%s may only write objects in namespaces labelled %s", who, label),
					Reason:     ptr.To(metav1.StatusReasonForbidden),
				},
				{
					Expression: "variables.isNamespace || variables.isVolume || request.namespace != ''",
					Message:    fmt.Sprintf("%s may not write cluster-scoped objects other than its namespaces and PersistentVolumes", who),
					Reason:     ptr.To(metav1.StatusReasonForbidden),
				},
			},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: objectMeta(d.ClusterObjectName, "", d.Labels),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        d.ClusterObjectName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	return []runtime.Object{policy, binding}
}

func selfReviews(group string, resources ...string) admissionregistrationv1.NamedRuleWithOperations {
	return admissionregistrationv1.NamedRuleWithOperations{
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: resources,
			},
		},
	}
}
