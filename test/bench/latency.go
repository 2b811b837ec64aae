package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// b2 creates ConfigMaps upstream at steady rates and times each from the return of its
// create to its first appearance in the harness's downstream watch.
func (r *runner) b2(ctx context.Context) error {
	const ns = "b2"
	if err := r.be.createUpstreamNamespace(ctx, 1, ns); err != nil {
		return err
	}
	dns, err := r.be.downstreamNamespace(1, ns)
	if err != nil {
		return err
	}
	client := r.be.upstreamDyn[0].Resource(configMapsGVR).Namespace(ns)
	labels := r.be.syncLabels()
	for _, rate := range r.cfg.b2Rates {
		n := rate * int(r.cfg.b2Duration/time.Second)
		group := newWaitGroup(n)
		waiters := make([]*waiter, n)
		created := make([]time.Time, n)
		started := make([]time.Time, n)
		cpu := takeCPU(r.be.env)
		err := runPaced(ctx, float64(rate), syncerWorkers, n, func(ctx context.Context, i int) error {
			name := fmt.Sprintf("b2-%d-%05d", rate, i)
			waiters[i] = r.downConfigMaps.expect(dns, name, group, exists)
			started[i] = time.Now()
			if err := create(ctx, client, configMap(name, labels, nil, map[string]string{"key": name})); err != nil {
				return err
			}
			created[i] = time.Now()
			return nil
		})
		if err != nil {
			return err
		}
		if err := group.wait(ctx, time.Minute, fmt.Sprintf("B2 %d/s objects downstream", rate)); err != nil {
			return err
		}
		r.rep.detail("B2 %d/s CPU %s", rate, cpu.until(takeCPU(r.be.env)))
		achieved := float64(rate)
		if n > 1 {
			achieved = float64(n-1) / started[n-1].Sub(started[0]).Seconds()
		}
		l := burstLatencies(created, waiters)
		r.log.logf("B2 %d/s: %s", rate, l.summary())
		rw := row{
			scenario: "B2 latency",
			figure:   fmt.Sprintf("create → downstream at %d/s for %s (achieved %.1f/s)", rate, r.cfg.b2Duration, achieved),
			value:    l.summary(),
		}
		if rate == 50 {
			rw.target = "p99 < 250ms"
			rw.verdict = verdict(l.percentile(0.99) < 250*time.Millisecond)
		}
		r.rep.add(rw)
		// Let the queues drain before the next rate.
		if _, err := r.sp.waitIdle(ctx, 0, time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// b3 measures the status round trip: a status written downstream until it is visible
// upstream. The primary figure patches the status of synced Ingresses downstream directly
// (no controller in the physical cluster owns Ingress status, so the value stays what the
// harness wrote); a second figure scales a Deployment upstream and waits until its pods'
// readiness comes back up (spec down, downstream controllers and kwok, status up).
func (r *runner) b3(ctx context.Context) error {
	const ns = "b3"
	if err := r.be.createUpstreamNamespace(ctx, 1, ns); err != nil {
		return err
	}
	dns, err := r.be.downstreamNamespace(1, ns)
	if err != nil {
		return err
	}
	labels := r.be.syncLabels()
	upIng := r.be.upstreamDyn[0].Resource(ingressesGVR).Namespace(ns)
	downIng := r.be.downstreamDyn.Resource(ingressesGVR).Namespace(dns)

	const objects = 5
	group := newWaitGroup(objects)
	for i := range objects {
		name := fmt.Sprintf("b3-ing-%d", i)
		r.downIngresses.expect(dns, name, group, exists)
		if err := create(ctx, upIng, ingress(name, labels)); err != nil {
			return err
		}
	}
	if err := group.wait(ctx, time.Minute, "B3 ingresses downstream"); err != nil {
		return err
	}
	var l latencies
	for s := range r.cfg.b3Samples {
		name := fmt.Sprintf("b3-ing-%d", s%objects)
		host := fmt.Sprintf("s%d.bench.test", s)
		w := r.upIngresses.expect(ns, name, nil, ingressHostIs(host))
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"hostname": host}}}}})
		if err := retry(ctx, func() error {
			_, err := downIng.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
			return err
		}); err != nil {
			return fmt.Errorf("failed to patch downstream ingress status: %w", err)
		}
		patched := time.Now()
		at, err := w.wait(ctx, 30*time.Second)
		if err != nil {
			return fmt.Errorf("B3 status of %s: %w", name, err)
		}
		l = append(l, at.Sub(patched))
	}
	r.log.logf("B3 ingress status: %s", l.summary())
	r.rep.add(row{scenario: "B3 status round trip", figure: "Ingress status patched downstream → visible upstream", value: l.summary(), target: "p99 < 1s", verdict: verdict(l.percentile(0.99) < time.Second)})

	return r.b3Scale(ctx, ns, labels)
}

// b3Scale scales a Deployment upstream between 1 and 2 replicas and times each change until
// the upstream status reports the new count ready.
func (r *runner) b3Scale(ctx context.Context, ns string, labels map[string]string) error {
	const name = "b3-web"
	client := r.be.upstreamDyn[0].Resource(deploymentsGVR).Namespace(ns)
	w := r.upDeployments.expect(ns, name, nil, deploymentReady(1))
	if err := create(ctx, client, deployment(name, labels, 1)); err != nil {
		return err
	}
	if _, err := w.wait(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("B3 deployment never became ready upstream: %w", err)
	}
	var l latencies
	for s := range r.cfg.b3ScaleSamples {
		replicas := int64(2 - s%2)
		w := r.upDeployments.expect(ns, name, nil, deploymentReady(replicas))
		patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
		if err := retry(ctx, func() error {
			_, err := client.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}); err != nil {
			return fmt.Errorf("failed to scale upstream deployment: %w", err)
		}
		patched := time.Now()
		at, err := w.wait(ctx, time.Minute)
		if err != nil {
			return fmt.Errorf("B3 deployment scaled to %d: %w", replicas, err)
		}
		l = append(l, at.Sub(patched))
	}
	r.log.logf("B3 deployment scale: %s", l.summary())
	r.rep.add(row{scenario: "B3 status round trip", figure: "Deployment scaled upstream → ready replicas visible upstream (incl. downstream controllers, scheduler, kwok)", value: l.summary()})
	return nil
}

func ingress(name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "networking.k8s.io/v1",
		"kind":       "Ingress",
		"spec": map[string]interface{}{
			"defaultBackend": map[string]interface{}{"service": map[string]interface{}{"name": "web", "port": map[string]interface{}{"number": int64(80)}}},
		},
	}}
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

func ingressHostIs(host string) func(eventType, *unstructured.Unstructured) bool {
	return func(ev eventType, u *unstructured.Unstructured) bool {
		if ev == eventDelete {
			return false
		}
		list, _, _ := unstructured.NestedSlice(u.Object, "status", "loadBalancer", "ingress")
		if len(list) == 0 {
			return false
		}
		m, _ := list[0].(map[string]interface{})
		return m["hostname"] == host
	}
}

func deployment(name string, labels map[string]string, replicas int64) *unstructured.Unstructured {
	sel := map[string]interface{}{"app": name}
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"spec": map[string]interface{}{
			"replicas": replicas,
			"selector": map[string]interface{}{"matchLabels": sel},
			"template": map[string]interface{}{
				"metadata": map[string]interface{}{"labels": sel},
				"spec": map[string]interface{}{
					"containers": []interface{}{map[string]interface{}{"name": "app", "image": "nginx:1.27"}},
				},
			},
		},
	}}
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

// deploymentReady matches a Deployment whose status reports exactly replicas, all ready
// and updated.
func deploymentReady(replicas int64) func(eventType, *unstructured.Unstructured) bool {
	return func(ev eventType, u *unstructured.Unstructured) bool {
		if ev == eventDelete {
			return false
		}
		for _, f := range []string{"replicas", "readyReplicas", "updatedReplicas", "availableReplicas"} {
			v, _, _ := unstructured.NestedInt64(u.Object, "status", f)
			if v != replicas {
				return false
			}
		}
		return true
	}
}

// b4 times updates, drift repairs and deletions of synced ConfigMaps, issued at a steady
// rate: update upstream → new data downstream; change downstream → reverted downstream;
// delete upstream → gone downstream.
func (r *runner) b4(ctx context.Context) error {
	const ns = "b4"
	m := r.cfg.b4Objects
	if err := r.be.createUpstreamNamespace(ctx, 1, ns); err != nil {
		return err
	}
	dns, err := r.be.downstreamNamespace(1, ns)
	if err != nil {
		return err
	}
	upClient := r.be.upstreamDyn[0].Resource(configMapsGVR).Namespace(ns)
	downClient := r.be.downstreamDyn.Resource(configMapsGVR).Namespace(dns)
	labels := r.be.syncLabels()
	name := func(i int) string { return fmt.Sprintf("b4-%03d", i) }

	group := newWaitGroup(m)
	for i := range m {
		r.downConfigMaps.expect(dns, name(i), group, exists)
	}
	if err := runPool(ctx, syncerWorkers, m, func(ctx context.Context, i int) error {
		return create(ctx, upClient, configMap(name(i), labels, nil, map[string]string{"v": "1"}))
	}); err != nil {
		return err
	}
	if err := group.wait(ctx, time.Minute, "B4 objects downstream"); err != nil {
		return err
	}
	if _, err := r.sp.waitIdle(ctx, 0, time.Minute); err != nil {
		return err
	}

	phase := func(what string, pred func(eventType, *unstructured.Unstructured) bool, act func(ctx context.Context, i int) error) (latencies, error) {
		group := newWaitGroup(m)
		waiters := make([]*waiter, m)
		done := make([]time.Time, m)
		err := runPaced(ctx, r.cfg.b4Rate, 8, m, func(ctx context.Context, i int) error {
			waiters[i] = r.downConfigMaps.expect(dns, name(i), group, pred)
			if err := retry(ctx, func() error { return act(ctx, i) }); err != nil {
				return fmt.Errorf("failed to %s %s: %w", what, name(i), err)
			}
			done[i] = time.Now()
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := group.wait(ctx, time.Minute, "B4 "+what); err != nil {
			return nil, err
		}
		l := burstLatencies(done, waiters)
		r.log.logf("B4 %s: %s", what, l.summary())
		_, err = r.sp.waitIdle(ctx, 0, time.Minute)
		return l, err
	}
	mergeData := func(v string) []byte { return []byte(fmt.Sprintf(`{"data":{"v":%q}}`, v)) }

	update, err := phase("update", dataIs("v", "2"), func(ctx context.Context, i int) error {
		_, err := upClient.Patch(ctx, name(i), types.MergePatchType, mergeData("2"), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return err
	}
	drift, err := phase("drift repair", dataIs("v", "2"), func(ctx context.Context, i int) error {
		_, err := downClient.Patch(ctx, name(i), types.MergePatchType, mergeData("drifted"), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return err
	}
	del, err := phase("delete", deleted, func(ctx context.Context, i int) error {
		err := upClient.Delete(ctx, name(i), metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	rate := fmt.Sprintf("%d objects at %.0f/s", m, r.cfg.b4Rate)
	r.rep.add(row{scenario: "B4 update", figure: "upstream update → new data downstream, " + rate, value: update.summary()})
	r.rep.add(row{scenario: "B4 drift", figure: "downstream change → reverted downstream, " + rate, value: drift.summary()})
	r.rep.add(row{scenario: "B4 delete", figure: "upstream delete → gone downstream, " + rate, value: del.summary()})
	return nil
}
