package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/localenv"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// TestSyncerHeartbeatAndSyncedResources checks the SyncTarget status the syncer reports:
// the heartbeat advances every interval, syncedResources and conditions reflect what the
// syncer may do, and removing its RBAC for a type turns that type Unauthorized.
func TestSyncerHeartbeatAndSyncedResources(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	se := setupSyncerEnv(t)
	se.startSyncer(t, syncerOptions{args: []string{"--discovery-interval=2s"}})
	sts := tmcClient(t, se.env.Workspace(locationWS).AdminConfig()).WorkloadV1alpha1().SyncTargets()

	// Collect a few heartbeats: each is later than the one before, about one interval apart.
	var beats []time.Time
	eventually(t, 30*time.Second, "heartbeats did not advance", func(ctx context.Context) (bool, error) {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil || st.Status.LastSyncerHeartbeatTime == nil {
			return false, nil
		}
		hb := st.Status.LastSyncerHeartbeatTime.Time
		if len(beats) == 0 || hb.After(beats[len(beats)-1]) {
			beats = append(beats, hb)
		}
		return len(beats) >= 4, nil
	})
	for i := 1; i < len(beats); i++ {
		if gap := beats[i].Sub(beats[i-1]); gap > 5*time.Second {
			t.Errorf("heartbeat gap %s with a 2s interval", gap)
		}
	}

	st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Status.SyncedResources) != len(workloadv1alpha1.DefaultResources()) {
		t.Errorf("syncedResources has %d entries, want the %d defaults: %+v", len(st.Status.SyncedResources), len(workloadv1alpha1.DefaultResources()), st.Status.SyncedResources)
	}
	for _, r := range st.Status.SyncedResources {
		if r.State != workloadv1alpha1.ResourceStateAccepted {
			t.Errorf("%s: state %s (%s), want Accepted", r.String(), r.State, r.Message)
		}
	}
	if st.Status.AcceptedResourceCount != int32(len(workloadv1alpha1.DefaultResources())) {
		t.Errorf("acceptedResourceCount = %d", st.Status.AcceptedResourceCount)
	}
	for _, c := range []string{workloadv1alpha1.SyncTargetSyncerReady, workloadv1alpha1.SyncTargetSyncerAuthorized, workloadv1alpha1.SyncTargetResourcesSynced} {
		if !meta.IsStatusConditionTrue(st.Status.Conditions, c) {
			t.Errorf("condition %s not True: %+v", c, meta.FindStatusCondition(st.Status.Conditions, c))
		}
	}
	if st.Status.Syncer == nil || st.Status.Syncer.Version == "" || st.Status.Syncer.StartTime == nil {
		t.Errorf("status.syncer not reported: %+v", st.Status.Syncer)
	}
	// Two kwok nodes of 32 CPUs each.
	if st.Status.Capacity == nil || st.Status.Capacity.Cpu().Value() != 64 {
		t.Errorf("capacity = %v, want 64 CPUs summed from the nodes", st.Status.Capacity)
	}

	// Take away the syncer's permissions on secrets downstream.
	down := se.downstreamKube(t)
	role, err := down.RbacV1().ClusterRoles().Get(ctx, localenv.SyncerRBACName(clusterName), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	for _, r := range role.Rules {
		var kept []string
		for _, res := range r.Resources {
			if res != "secrets" {
				kept = append(kept, res)
			}
		}
		r.Resources = kept
		rules = append(rules, r)
	}
	role.Rules = rules
	if _, err := down.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "secrets did not turn Unauthorized", func(ctx context.Context) (bool, error) {
		st, err := sts.Get(ctx, clusterName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, r := range st.Status.SyncedResources {
			if r.Resource == "secrets" && r.State == workloadv1alpha1.ResourceStateUnauthorized {
				c := meta.FindStatusCondition(st.Status.Conditions, workloadv1alpha1.SyncTargetSyncerAuthorized)
				return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "secrets"), nil
			}
		}
		return false, nil
	})
	st, _ = sts.Get(ctx, clusterName, metav1.GetOptions{})
	for _, r := range st.Status.SyncedResources {
		if r.Resource != "secrets" && r.State != workloadv1alpha1.ResourceStateAccepted {
			t.Errorf("%s changed to %s", r.String(), r.State)
		}
	}
	if st.Status.AcceptedResourceCount != int32(len(workloadv1alpha1.DefaultResources())-1) {
		t.Errorf("acceptedResourceCount = %d after removing secrets", st.Status.AcceptedResourceCount)
	}
}
