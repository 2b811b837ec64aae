package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tmc-dev/tmc/pkg/cliplugins/workload/sync/syncerrbac"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// confinementChecker reports the SyncerConfined condition: whether the
// ValidatingAdmissionPolicy and binding that `kubectl tmc workload sync` generates (both
// named policyName) exist downstream and still confine the syncer's own user as generated
// (syncerrbac.CheckAdmissionPolicy). It is asked with every heartbeat and checks at most
// once per recheck (two GETs by name and, once, a SelfSubjectReview to learn the syncer's
// user name), answering with the last verdict in between, so that an idle syncer adds few
// requests. It never stops the syncer; it
// makes an unconfined syncer loud: the condition, a Warning Event on the SyncTarget once per
// transition, and the syncer_confined gauge.
type confinementChecker struct {
	policyName    string
	syncTargetKey string
	getPolicy     func(ctx context.Context, name string) (*admissionregistrationv1.ValidatingAdmissionPolicy, error)
	getBinding    func(ctx context.Context, name string) (*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error)
	// whoAmI returns the syncer's user name on the physical cluster.
	whoAmI func(ctx context.Context) (string, error)
	// setConfined publishes the gauge; recorder (nil: none) records Events on syncTargetRef.
	setConfined   func(confined bool)
	recorder      record.EventRecorder
	syncTargetRef *corev1.ObjectReference

	// recheck is the least time between two checks (0: check every time asked).
	recheck time.Duration

	mu       sync.Mutex
	userName string
	// last is the last verdict, reached at checkedAt; nil until one is known.
	last      *metav1.Condition
	checkedAt time.Time
}

func newConfinementChecker(target syncTarget, policyName string, downstreamKube kubernetes.Interface, metrics *syncerMetrics, recorder record.EventRecorder) *confinementChecker {
	admission := downstreamKube.AdmissionregistrationV1()
	gauge := metrics.confined.WithLabelValues(metrics.clusterName)
	return &confinementChecker{
		policyName:    policyName,
		syncTargetKey: target.key,
		getPolicy: func(ctx context.Context, name string) (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
			return admission.ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{})
		},
		getBinding: func(ctx context.Context, name string) (*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
			return admission.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
		},
		whoAmI: func(ctx context.Context) (string, error) {
			review, err := downstreamKube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return review.Status.UserInfo.Username, nil
		},
		setConfined: func(confined bool) {
			v := 0.0
			if confined {
				v = 1
			}
			gauge.Set(v)
		},
		recorder: recorder,
		syncTargetRef: &corev1.ObjectReference{
			APIVersion: workloadv1alpha1.SchemeGroupVersion.String(), Kind: "SyncTarget", Name: target.name, UID: target.uid,
		},
	}
}

// confinementRecheckHeartbeats is how many heartbeats a verdict is reused for: with the
// default 20 s interval, two GETs a minute.
const confinementRecheckHeartbeats = 3

// everyNthHeartbeat makes c check at most once per n heartbeats of the given interval.
func (c *confinementChecker) everyNthHeartbeat(interval time.Duration, n int) *confinementChecker {
	c.recheck = time.Duration(n) * interval
	return c
}

// condition checks the confinement and returns the SyncerConfined condition (without
// lastTransitionTime), or false while no verdict is known: a check that fails for another
// reason than the answer itself (downstream unreachable) keeps the last verdict.
func (c *confinementChecker) condition(ctx context.Context) (metav1.Condition, bool) {
	logger := klog.FromContext(ctx)
	c.mu.Lock()
	if c.last != nil && c.recheck > 0 && time.Since(c.checkedAt) < c.recheck {
		defer c.mu.Unlock()
		return *c.last, true
	}
	c.mu.Unlock()
	verdict, err := c.check(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		logger.V(2).Info("Cannot check the syncer's admission policy now; keeping the last verdict", "admissionPolicy", c.policyName, "err", err)
		if c.last == nil {
			return metav1.Condition{}, false
		}
		return *c.last, true
	}
	previous := c.last
	c.last, c.checkedAt = &verdict, time.Now()
	c.setConfined(verdict.Status == metav1.ConditionTrue)
	if previous == nil || previous.Status != verdict.Status || previous.Reason != verdict.Reason {
		c.transitioned(ctx, verdict, previous)
	}
	return verdict, true
}

// transitioned logs a new verdict and records an Event: a Warning for every change to an
// unconfined verdict, a Normal one when the syncer is confined again (none when it is
// confined from the start).
func (c *confinementChecker) transitioned(ctx context.Context, verdict metav1.Condition, previous *metav1.Condition) {
	logger := klog.FromContext(ctx)
	if verdict.Status == metav1.ConditionTrue {
		logger.Info("The syncer is confined by its admission policy", "admissionPolicy", c.policyName)
		if c.recorder != nil && previous != nil {
			c.recorder.Event(c.syncTargetRef, corev1.EventTypeNormal, workloadv1alpha1.ReasonSyncerConfined, verdict.Message)
		}
		return
	}
	logger.Info("The syncer is NOT confined by its admission policy; it keeps syncing", "admissionPolicy", c.policyName, "reason", verdict.Reason, "message", verdict.Message)
	if c.recorder != nil {
		c.recorder.Event(c.syncTargetRef, corev1.EventTypeWarning, verdict.Reason, verdict.Message)
	}
}

// check reads the policy and its binding and judges them; an error means no verdict.
func (c *confinementChecker) check(ctx context.Context) (metav1.Condition, error) {
	user, err := c.user(ctx)
	if err != nil {
		if v, ok := c.notVerifiable(err, "learn its own user name on the physical cluster (SelfSubjectReview)"); ok {
			return v, nil
		}
		return metav1.Condition{}, err
	}
	policy, err := c.getPolicy(ctx, c.policyName)
	switch {
	case apierrors.IsNotFound(err):
		return c.unconfined(workloadv1alpha1.ReasonPolicyMissing, fmt.Sprintf(
			"ValidatingAdmissionPolicy %s does not exist on the physical cluster (or the cluster, before Kubernetes 1.30, serves no admissionregistration.k8s.io/v1 policies)", c.policyName)), nil
	case err != nil:
		if v, ok := c.notVerifiable(err, "get ValidatingAdmissionPolicy "+c.policyName); ok {
			return v, nil
		}
		return metav1.Condition{}, err
	}
	if err := syncerrbac.CheckAdmissionPolicy(policy, user, c.syncTargetKey); err != nil {
		return c.unconfined(workloadv1alpha1.ReasonPolicyMissing, fmt.Sprintf(
			"ValidatingAdmissionPolicy %s does not confine user %s as generated: %v", c.policyName, user, err)), nil
	}
	binding, err := c.getBinding(ctx, c.policyName)
	switch {
	case apierrors.IsNotFound(err):
		return c.unconfined(workloadv1alpha1.ReasonBindingMissing, fmt.Sprintf(
			"ValidatingAdmissionPolicyBinding %s does not exist on the physical cluster: policy %s is not enforced", c.policyName, c.policyName)), nil
	case err != nil:
		if v, ok := c.notVerifiable(err, "get ValidatingAdmissionPolicyBinding "+c.policyName); ok {
			return v, nil
		}
		return metav1.Condition{}, err
	}
	if err := syncerrbac.CheckAdmissionPolicyBinding(binding, c.policyName); err != nil {
		return c.unconfined(workloadv1alpha1.ReasonBindingMissing, fmt.Sprintf(
			"ValidatingAdmissionPolicyBinding %s does not enforce policy %s as generated: %v", c.policyName, c.policyName, err)), nil
	}
	return metav1.Condition{
		Type: workloadv1alpha1.SyncTargetSyncerConfined, Status: metav1.ConditionTrue, Reason: workloadv1alpha1.ReasonSyncerConfined,
		Message: fmt.Sprintf("ValidatingAdmissionPolicy %s and its binding confine user %s to the namespaces labelled %s=%s",
			c.policyName, user, workloadv1alpha1.InternalDownstreamClusterLabel, c.syncTargetKey),
	}, nil
}

// user returns the syncer's user name, asking the physical cluster once.
func (c *confinementChecker) user(ctx context.Context) (string, error) {
	c.mu.Lock()
	user := c.userName
	c.mu.Unlock()
	if user != "" {
		return user, nil
	}
	user, err := c.whoAmI(ctx)
	if err != nil {
		return "", err
	}
	if user == "" {
		return "", apierrors.NewForbidden(authenticationv1.Resource("selfsubjectreviews"), "", fmt.Errorf("the review returned no user name"))
	}
	c.mu.Lock()
	c.userName = user
	c.mu.Unlock()
	return user, nil
}

func (c *confinementChecker) unconfined(reason, msg string) metav1.Condition {
	return metav1.Condition{
		Type: workloadv1alpha1.SyncTargetSyncerConfined, Status: metav1.ConditionFalse, Reason: reason,
		Message: msg + ". The syncer keeps syncing, but its writes are confined by RBAC only: re-apply the manifest of `kubectl tmc workload sync`",
	}
}

// notVerifiable turns an answer that the syncer may not ask (or that the API is missing)
// into the NotVerifiable verdict; other errors are no verdict.
func (c *confinementChecker) notVerifiable(err error, what string) (metav1.Condition, bool) {
	if !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) && !apierrors.IsNotFound(err) {
		return metav1.Condition{}, false
	}
	return metav1.Condition{
		Type: workloadv1alpha1.SyncTargetSyncerConfined, Status: metav1.ConditionFalse, Reason: workloadv1alpha1.ReasonConfinementNotVerifiable,
		Message: fmt.Sprintf("The syncer cannot tell whether it is confined: it may not %s: %v. The generated ClusterRole grants get on the policy and its binding", what, err),
	}, true
}
