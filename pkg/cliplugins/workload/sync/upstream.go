package sync

import (
	"context"
	"fmt"
	"io"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// upstreamRequest is what the command ensures in the location workspace.
type upstreamRequest struct {
	syncTargetName string
	// locationWorkspace is the path of the location workspace (hubWorkspace on a plain
	// hub): with the SyncTarget's logical-cluster name it gives the key recorded in the
	// SyncTarget's key label.
	locationWorkspace string
	// labels are merged into the SyncTarget's labels.
	labels map[string]string
	// resources replace spec.resources when set; nil leaves them as they are.
	resources []workloadv1alpha1.ResourceToSync
	// namespace holds the syncer's ServiceAccount.
	namespace string
	// tokenExpiration is the requested lifetime of the ServiceAccount token.
	tokenExpiration time.Duration
}

// upstreamResult is what the command made in the location workspace.
type upstreamResult struct {
	syncTarget     *workloadv1alpha1.SyncTarget
	serviceAccount *corev1.ServiceAccount
	token          string
	// tokenExpiration is when the token expires, as the server decided.
	tokenExpiration time.Time
}

// upstream creates or updates the syncer's objects in the location workspace. Every step is
// idempotent: running it again updates what differs and leaves the rest untouched.
type upstream struct {
	upstreamKube kubernetes.Interface
	upstreamTMC  tmcclient.Interface
	// out receives one kubectl-style line per object ("... created", "... unchanged").
	out io.Writer
}

var upstreamLabels = map[string]string{"app.kubernetes.io/managed-by": "kubectl-tmc"}

func (u *upstream) ensure(ctx context.Context, req upstreamRequest) (*upstreamResult, error) {
	st, err := u.ensureSyncTarget(ctx, req)
	if err != nil {
		return nil, err
	}
	// The credentials belong to this SyncTarget: deleting it garbage-collects them, which
	// revokes every token minted for the ServiceAccount.
	owner := metav1.OwnerReference{
		APIVersion: workloadv1alpha1.SchemeGroupVersion.String(),
		Kind:       "SyncTarget",
		Name:       st.Name,
		UID:        st.UID,
	}
	name := namePrefix + req.syncTargetName
	if err := u.ensureNamespace(ctx, req.namespace); err != nil {
		return nil, err
	}
	sa, err := u.ensureServiceAccount(ctx, req.namespace, name, owner)
	if err != nil {
		return nil, err
	}
	if err := u.ensureClusterRole(ctx, name, req.syncTargetName, owner); err != nil {
		return nil, err
	}
	if err := u.ensureClusterRoleBinding(ctx, name, req.namespace, owner); err != nil {
		return nil, err
	}
	token, err := u.upstreamKube.CoreV1().ServiceAccounts(req.namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(req.tokenExpiration / time.Second))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to request a token for ServiceAccount %s/%s: %w", req.namespace, name, err)
	}
	if token.Status.Token == "" {
		return nil, fmt.Errorf("the token request for ServiceAccount %s/%s returned no token", req.namespace, name)
	}
	return &upstreamResult{
		syncTarget:      st,
		serviceAccount:  sa,
		token:           token.Status.Token,
		tokenExpiration: token.Status.ExpirationTimestamp.Time,
	}, nil
}

func (u *upstream) report(kind, name, what string) {
	_, _ = fmt.Fprintf(u.out, "%s/%s %s\n", kind, name, what)
}

// ensureSyncTarget creates the SyncTarget or updates its labels and resources.
func (u *upstream) ensureSyncTarget(ctx context.Context, req upstreamRequest) (*workloadv1alpha1.SyncTarget, error) {
	client := u.upstreamTMC.WorkloadV1alpha1().SyncTargets()
	const kind = "synctarget.workload.kcp.io"
	mutate := func(st *workloadv1alpha1.SyncTarget) {
		if st.Labels == nil {
			st.Labels = map[string]string{}
		}
		for k, v := range req.labels {
			st.Labels[k] = v
		}
		st.Labels[workloadv1alpha1.InternalSyncTargetKeyLabel] = workloadv1alpha1.SyncTargetKeyOf(st, req.locationWorkspace)
		if req.resources != nil {
			st.Spec.Resources = append([]workloadv1alpha1.ResourceToSync(nil), req.resources...)
		}
	}
	var result *workloadv1alpha1.SyncTarget
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := client.Get(ctx, req.syncTargetName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			st := &workloadv1alpha1.SyncTarget{ObjectMeta: metav1.ObjectMeta{Name: req.syncTargetName}}
			mutate(st)
			if result, err = client.Create(ctx, st, metav1.CreateOptions{}); err != nil {
				// AlreadyExists means a concurrent create: retry as an update.
				if apierrors.IsAlreadyExists(err) {
					return apierrors.NewConflict(workloadv1alpha1.Resource("synctargets"), req.syncTargetName, err)
				}
				return err
			}
			u.report(kind, req.syncTargetName, "created")
			// kcp records the logical-cluster name on the created object; the key follows it.
			if want := workloadv1alpha1.SyncTargetKeyOf(result, req.locationWorkspace); result.Labels[workloadv1alpha1.InternalSyncTargetKeyLabel] != want {
				updated := result.DeepCopy()
				updated.Labels[workloadv1alpha1.InternalSyncTargetKeyLabel] = want
				result, err = client.Update(ctx, updated, metav1.UpdateOptions{})
			}
			return err
		}
		if err != nil {
			return err
		}
		updated := existing.DeepCopy()
		mutate(updated)
		if equality.Semantic.DeepEqual(existing, updated) {
			result = existing
			u.report(kind, req.syncTargetName, "unchanged")
			return nil
		}
		if result, err = client.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return err
		}
		u.report(kind, req.syncTargetName, "configured")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create or update SyncTarget %s: %w", req.syncTargetName, err)
	}
	return result, nil
}

func (u *upstream) ensureNamespace(ctx context.Context, name string) error {
	_, err := u.upstreamKube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		if err != nil {
			return fmt.Errorf("failed to get namespace %s: %w", name, err)
		}
		return nil
	}
	_, err = u.upstreamKube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", name, err)
	}
	u.report("namespace", name, "created")
	return nil
}

// withOwner returns refs with owner replacing any reference to a SyncTarget of the same
// name (one deleted and re-created has a new UID).
func withOwner(refs []metav1.OwnerReference, owner metav1.OwnerReference) []metav1.OwnerReference {
	out := []metav1.OwnerReference{owner}
	for _, r := range refs {
		if r.Kind == owner.Kind && r.Name == owner.Name && r.APIVersion == owner.APIVersion {
			continue
		}
		out = append(out, r)
	}
	return out
}

func withLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for k, v := range upstreamLabels {
		out[k] = v
	}
	return out
}

func (u *upstream) ensureServiceAccount(ctx context.Context, namespace, name string, owner metav1.OwnerReference) (*corev1.ServiceAccount, error) {
	client := u.upstreamKube.CoreV1().ServiceAccounts(namespace)
	var result *corev1.ServiceAccount
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := client.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			result, err = client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: namespace, Labels: withLabels(nil),
				OwnerReferences: []metav1.OwnerReference{owner},
			}}, metav1.CreateOptions{})
			if err == nil {
				u.report("serviceaccount", namespace+"/"+name, "created")
			}
			return err
		}
		if err != nil {
			return err
		}
		updated := existing.DeepCopy()
		updated.Labels = withLabels(existing.Labels)
		updated.OwnerReferences = withOwner(existing.OwnerReferences, owner)
		if equality.Semantic.DeepEqual(existing, updated) {
			result = existing
			u.report("serviceaccount", namespace+"/"+name, "unchanged")
			return nil
		}
		if result, err = client.Update(ctx, updated, metav1.UpdateOptions{}); err == nil {
			u.report("serviceaccount", namespace+"/"+name, "configured")
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create or update ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return result, nil
}

func (u *upstream) ensureClusterRole(ctx context.Context, name, syncTargetName string, owner metav1.OwnerReference) error {
	client := u.upstreamKube.RbacV1().ClusterRoles()
	const kind = "clusterrole.rbac.authorization.k8s.io"
	rules := syncerrbac.LocationWorkspaceRules(syncTargetName)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := client.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = client.Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: withLabels(nil), OwnerReferences: []metav1.OwnerReference{owner}},
				Rules:      rules,
			}, metav1.CreateOptions{})
			if err == nil {
				u.report(kind, name, "created")
			}
			return err
		}
		if err != nil {
			return err
		}
		updated := existing.DeepCopy()
		updated.Labels = withLabels(existing.Labels)
		updated.OwnerReferences = withOwner(existing.OwnerReferences, owner)
		updated.Rules = rules
		if equality.Semantic.DeepEqual(existing, updated) {
			u.report(kind, name, "unchanged")
			return nil
		}
		if _, err = client.Update(ctx, updated, metav1.UpdateOptions{}); err == nil {
			u.report(kind, name, "configured")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to create or update ClusterRole %s: %w", name, err)
	}
	return nil
}

func (u *upstream) ensureClusterRoleBinding(ctx context.Context, name, namespace string, owner metav1.OwnerReference) error {
	client := u.upstreamKube.RbacV1().ClusterRoleBindings()
	const kind = "clusterrolebinding.rbac.authorization.k8s.io"
	want := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: withLabels(nil), OwnerReferences: []metav1.OwnerReference{owner}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}},
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing, err := client.Get(ctx, name, metav1.GetOptions{})
		if err == nil && existing.RoleRef != want.RoleRef {
			// roleRef is immutable: replace the binding.
			if err := client.Delete(ctx, name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &existing.UID},
			}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			err = apierrors.NewNotFound(rbacv1.Resource("clusterrolebindings"), name)
		}
		if apierrors.IsNotFound(err) {
			if _, err = client.Create(ctx, want, metav1.CreateOptions{}); err == nil {
				u.report(kind, name, "created")
			}
			return err
		}
		if err != nil {
			return err
		}
		updated := existing.DeepCopy()
		updated.Labels = withLabels(existing.Labels)
		updated.OwnerReferences = withOwner(existing.OwnerReferences, owner)
		updated.Subjects = want.Subjects
		if equality.Semantic.DeepEqual(existing, updated) {
			u.report(kind, name, "unchanged")
			return nil
		}
		if _, err = client.Update(ctx, updated, metav1.UpdateOptions{}); err == nil {
			u.report(kind, name, "configured")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to create or update ClusterRoleBinding %s: %w", name, err)
	}
	return nil
}
