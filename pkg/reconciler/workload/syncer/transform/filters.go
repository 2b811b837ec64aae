package transform

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ServiceAccountTokenSecretFilter refuses v1 Secrets of type
// kubernetes.io/service-account-token. Their tokens are minted for the upstream service
// account; the downstream apiserver would reject them or its token controller would rewrite
// or delete them.
type ServiceAccountTokenSecretFilter struct{}

// Name implements Filter.
func (ServiceAccountTokenSecretFilter) Name() string { return "service-account-token-secret" }

// Filter implements Filter.
func (ServiceAccountTokenSecretFilter) Filter(_ context.Context, _ Context, upstream *unstructured.Unstructured) (bool, string) {
	gvk := upstream.GroupVersionKind()
	if gvk.Group != "" || gvk.Version != "v1" || gvk.Kind != "Secret" {
		return true, ""
	}
	secretType, _, _ := unstructured.NestedString(upstream.Object, "type")
	if secretType == string(corev1.SecretTypeServiceAccountToken) {
		return false, "secrets of type " + secretType + " are owned by the downstream cluster's token controller"
	}
	return true, ""
}
