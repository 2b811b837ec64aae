package transform

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const desiredDeployment = `{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "kcp-0123456789ab",
    "labels": {"app": "web", "internal.workload.kcp.io/cluster": "STKEY"}},
  "spec": {
    "replicas": 3,
    "template": {"spec": {"containers": [{"name": "web", "image": "nginx",
      "args": ["-a", "-b"],
      "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}}]}}
  }
}`

func TestNeedsApply(t *testing.T) {
	// Each case edits a copy of the desired object to make the live object.
	tests := []struct {
		name       string
		desired    func(d *unstructured.Unstructured)
		live       func(l *unstructured.Unstructured) *unstructured.Unstructured
		wantApply  bool
		wantReason string
	}{
		{
			name:       "no live object",
			live:       func(*unstructured.Unstructured) *unstructured.Unstructured { return nil },
			wantApply:  true,
			wantReason: "missing",
		},
		{
			name: "equal",
		},
		{
			name: "live has defaulted fields, status and more metadata",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.SetUID("u-1")
				l.SetResourceVersion("42")
				l.SetAnnotations(map[string]string{"deployment.kubernetes.io/revision": "1"})
				spec := l.Object["spec"].(map[string]interface{})
				spec["progressDeadlineSeconds"] = int64(600)
				spec["strategy"] = map[string]interface{}{"type": "RollingUpdate"}
				container := containerOf(l)
				container["imagePullPolicy"] = "Always"
				container["terminationMessagePath"] = "/dev/termination-log"
				l.Object["status"] = map[string]interface{}{"replicas": int64(3)}
				return l
			},
		},
		{
			name: "drift in a scalar",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.Object["spec"].(map[string]interface{})["replicas"] = int64(1)
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.replicas",
		},
		{
			name: "drift in a list element",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				containerOf(l)["image"] = "evil"
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.template.spec.containers[0].image",
		},
		{
			name: "list length changed",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				containerOf(l)["args"] = []interface{}{"-a"}
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.template.spec.containers[0].args",
		},
		{
			name: "label removed downstream",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.SetLabels(map[string]string{"internal.workload.kcp.io/cluster": stKey})
				return l
			},
			wantApply:  true,
			wantReason: "drift at metadata.labels.app",
		},
		{
			name: "quantity canonicalised by the apiserver",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				containerOf(l)["resources"] = map[string]interface{}{"requests": map[string]interface{}{"cpu": "500m", "memory": "1024Mi"}}
				return l
			},
		},
		{
			name: "number sent for a quantity comes back as a string",
			desired: func(d *unstructured.Unstructured) {
				containerOf(d)["resources"] = map[string]interface{}{"limits": map[string]interface{}{"cpu": int64(2), "memory": 0.5}}
			},
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				containerOf(l)["resources"] = map[string]interface{}{"limits": map[string]interface{}{"cpu": "2", "memory": "500m"}}
				return l
			},
		},
		{
			name: "different quantities",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				containerOf(l)["resources"] = map[string]interface{}{"requests": map[string]interface{}{"cpu": "600m", "memory": "1Gi"}}
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.template.spec.containers[0].resources.requests.cpu",
		},
		{
			name: "int in desired, float in live",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.Object["spec"].(map[string]interface{})["replicas"] = float64(3)
				return l
			},
		},
		{
			name: "int against a non-integral float",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.Object["spec"].(map[string]interface{})["replicas"] = 3.5
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.replicas",
		},
		{
			name: "zero values in desired match fields the apiserver omitted",
			desired: func(d *unstructured.Unstructured) {
				spec := d.Object["spec"].(map[string]interface{})
				spec["paused"] = false
				spec["minReadySeconds"] = int64(0)
				spec["selector"] = map[string]interface{}{}
				containerOf(d)["command"] = []interface{}{}
				containerOf(d)["workingDir"] = ""
				containerOf(d)["env"] = nil
			},
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				spec := l.Object["spec"].(map[string]interface{})
				for _, k := range []string{"paused", "minReadySeconds", "selector"} {
					delete(spec, k)
				}
				for _, k := range []string{"command", "workingDir", "env"} {
					delete(containerOf(l), k)
				}
				return l
			},
		},
		{
			name: "field missing downstream",
			desired: func(d *unstructured.Unstructured) {
				d.Object["spec"].(map[string]interface{})["minReadySeconds"] = int64(5)
			},
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				delete(l.Object["spec"].(map[string]interface{}), "minReadySeconds")
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.minReadySeconds",
		},
		{
			name: "type changed",
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.Object["spec"].(map[string]interface{})["template"] = "x"
				return l
			},
			wantApply:  true,
			wantReason: "drift at spec.template",
		},
		{
			name: "hash changed",
			desired: func(d *unstructured.Unstructured) {
				if err := SetHash(d); err != nil {
					t.Fatal(err)
				}
			},
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.SetAnnotations(map[string]string{SpecHashAnnotation: "0000000000000000"})
				return l
			},
			wantApply:  true,
			wantReason: "hash changed",
		},
		{
			name: "hash missing downstream",
			desired: func(d *unstructured.Unstructured) {
				if err := SetHash(d); err != nil {
					t.Fatal(err)
				}
			},
			live: func(l *unstructured.Unstructured) *unstructured.Unstructured {
				l.SetAnnotations(nil)
				return l
			},
			wantApply:  true,
			wantReason: "hash changed",
		},
		{
			name: "same hash and no drift",
			desired: func(d *unstructured.Unstructured) {
				if err := SetHash(d); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired := obj(t, desiredDeployment)
			if tt.desired != nil {
				tt.desired(desired)
			}
			live := desired.DeepCopy()
			if tt.live != nil {
				live = tt.live(live)
			}
			desiredBefore := desired.DeepCopy()

			gotApply, gotReason := NeedsApply(desired, live)
			if gotApply != tt.wantApply || gotReason != tt.wantReason {
				t.Errorf("NeedsApply() = %v, %q; want %v, %q", gotApply, gotReason, tt.wantApply, tt.wantReason)
			}
			expectUnchanged(t, desiredBefore, desired)
		})
	}
}

// containerOf returns the first container of a Deployment, for editing in place
// (unstructured.NestedSlice would return a copy).
func containerOf(u *unstructured.Unstructured) map[string]interface{} {
	podSpec := u.Object["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})
	return podSpec["containers"].([]interface{})[0].(map[string]interface{})
}

func TestNeedsApplyHash(t *testing.T) {
	base := func(t *testing.T) *unstructured.Unstructured { return obj(t, desiredDeployment) }
	mustHash := func(t *testing.T, u *unstructured.Unstructured) string {
		t.Helper()
		h, err := Hash(u)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	t.Run("short hex", func(t *testing.T) {
		h := mustHash(t, base(t))
		if len(h) != 16 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Errorf("Hash() = %q, want 16 lowercase hex digits", h)
		}
	})
	t.Run("stable across map orderings and number representations", func(t *testing.T) {
		a := base(t)
		// Same content, keys written in another order, replicas as a float.
		b := obj(t, `{
		  "spec": {
		    "template": {"spec": {"containers": [{"resources": {"requests": {"memory": "1Gi", "cpu": "0.5"}},
		      "args": ["-a", "-b"], "image": "nginx", "name": "web"}]}},
		    "replicas": 3.0
		  },
		  "metadata": {"labels": {"internal.workload.kcp.io/cluster": "STKEY", "app": "web"},
		    "namespace": "kcp-0123456789ab", "name": "web"},
		  "kind": "Deployment", "apiVersion": "apps/v1"
		}`)
		for range 20 {
			if ha, hb := mustHash(t, a), mustHash(t, b); ha != hb {
				t.Fatalf("Hash() differs for equal objects: %s vs %s", ha, hb)
			}
		}
	})
	t.Run("changes when spec changes", func(t *testing.T) {
		a, b := base(t), base(t)
		b.Object["spec"].(map[string]interface{})["replicas"] = int64(4)
		if mustHash(t, a) == mustHash(t, b) {
			t.Error("Hash() did not change when spec.replicas changed")
		}
	})
	t.Run("changes when a label is removed", func(t *testing.T) {
		a, b := base(t), base(t)
		b.SetLabels(map[string]string{"internal.workload.kcp.io/cluster": stKey})
		if mustHash(t, a) == mustHash(t, b) {
			t.Error("Hash() did not change when a label was removed")
		}
	})
	t.Run("independent of the hash annotation itself", func(t *testing.T) {
		plain := base(t)
		want := mustHash(t, plain)

		withHash := base(t)
		if err := SetHash(withHash); err != nil {
			t.Fatal(err)
		}
		if got := withHash.GetAnnotations()[SpecHashAnnotation]; got != want {
			t.Errorf("SetHash() stored %q, want %q", got, want)
		}
		if got := mustHash(t, withHash); got != want {
			t.Errorf("Hash() of an object carrying the annotation = %q, want %q", got, want)
		}
		// Setting it again is idempotent, and other annotations are kept.
		withHash.SetAnnotations(map[string]string{SpecHashAnnotation: "stale", "team": "a"})
		if err := SetHash(withHash); err != nil {
			t.Fatal(err)
		}
		annotated := base(t)
		annotated.SetAnnotations(map[string]string{"team": "a"})
		if got, want := withHash.GetAnnotations()[SpecHashAnnotation], mustHash(t, annotated); got != want {
			t.Errorf("SetHash() over a stale value stored %q, want %q", got, want)
		}
		if withHash.GetAnnotations()["team"] != "a" {
			t.Error("SetHash() dropped another annotation")
		}
	})
	t.Run("does not modify its input", func(t *testing.T) {
		u := base(t)
		u.SetAnnotations(map[string]string{SpecHashAnnotation: "x"})
		before := u.DeepCopy()
		mustHash(t, u)
		expectUnchanged(t, before, u)
	})
	t.Run("nil", func(t *testing.T) {
		if _, err := Hash(nil); err == nil {
			t.Error("Hash(nil) error = nil")
		}
	})
}

// TestNeedsApplyAfterRestart is the "restart with N synced objects issues zero writes"
// property: the desired object recomputed from the same upstream matches what was applied.
func TestNeedsApplyAfterRestart(t *testing.T) {
	chain := DefaultChain()
	tc := namespacedContext(deploymentsGVR)
	upstream := obj(t, noisyDeployment)

	applied, err := chain.Down(t.Context(), tc, upstream)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetHash(applied); err != nil {
		t.Fatal(err)
	}
	// What the apiserver returns: our fields, canonicalised, plus its own.
	live := applied.DeepCopy()
	live.SetUID("u-2")
	live.SetResourceVersion("7")
	containerOf(live)["resources"] = map[string]interface{}{"requests": map[string]interface{}{"cpu": "500m"}}
	containerOf(live)["imagePullPolicy"] = "IfNotPresent"

	desired, err := chain.Down(t.Context(), tc, upstream)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetHash(desired); err != nil {
		t.Fatal(err)
	}
	if needs, reason := NeedsApply(desired, live); needs {
		t.Errorf("NeedsApply() = true (%s) after a restart with nothing changed", reason)
	}
}
