package transform

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// benchDeployment is an upstream Deployment as the syncer's informer hands it over: server
// metadata, managed fields, the state label and finalizer, a realistic pod template and a
// status (about 3 KB of JSON). No deployment controller runs upstream, so it has no
// deployment.kubernetes.io/revision annotation; the downstream copy gets one.
const benchDeployment = `{
  "apiVersion": "apps/v1",
  "kind": "Deployment",
  "metadata": {
    "name": "web",
    "namespace": "shop",
    "uid": "2b1e6a5c-0000-4000-8000-000000000001",
    "resourceVersion": "4711",
    "generation": 3,
    "creationTimestamp": "2025-01-01T00:00:00Z",
    "finalizers": ["workload.kcp.io/syncer-STKEY"],
    "labels": {"app": "web", "tier": "frontend", "state.workload.kcp.io/STKEY": "Sync"},
    "annotations": {
      "kcp.io/cluster": "2x8h3kq",
      "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"}}"
    },
    "managedFields": [
      {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
       "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:tier": {}}}, "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}}}}},
      {"manager": "workload-syncer", "operation": "Update", "apiVersion": "apps/v1", "time": "2025-01-01T00:00:01Z", "fieldsType": "FieldsV1",
       "fieldsV1": {"f:status": {"f:replicas": {}, "f:readyReplicas": {}}}, "subresource": "status"}
    ]
  },
  "spec": {
    "replicas": 3,
    "revisionHistoryLimit": 10,
    "progressDeadlineSeconds": 600,
    "selector": {"matchLabels": {"app": "web"}},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
    "template": {
      "metadata": {"labels": {"app": "web", "tier": "frontend"}, "annotations": {"prometheus.io/scrape": "true"}},
      "spec": {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "containers": [{
          "name": "web",
          "image": "registry.example.com/shop/web:1.27.3",
          "imagePullPolicy": "IfNotPresent",
          "args": ["--port=8080", "--log-level=info"],
          "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
          "env": [{"name": "MODE", "value": "production"}, {"name": "CACHE_SIZE", "value": "256"}],
          "resources": {"requests": {"cpu": "0.5", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
          "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
          "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
          "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]
        }],
        "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}}]
      }
    }
  },
  "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "lastUpdateTime": "2025-01-01T00:00:05Z", "lastTransitionTime": "2025-01-01T00:00:05Z"}]}
}`

func benchObject(b *testing.B, js string) *unstructured.Unstructured {
	b.Helper()
	js = strings.NewReplacer("OTHERKEY", otherKey, "STKEY", stKey).Replace(js)
	content := map[string]interface{}{}
	if err := utiljson.Unmarshal([]byte(js), &content); err != nil {
		b.Fatalf("invalid fixture: %v", err)
	}
	return &unstructured.Unstructured{Object: content}
}

// benchDesired returns the object the syncer applies for benchDeployment, spec hash set.
func benchDesired(b *testing.B) *unstructured.Unstructured {
	b.Helper()
	desired, err := DefaultChain().Down(context.Background(), namespacedContext(deploymentsGVR), benchObject(b, benchDeployment))
	if err != nil {
		b.Fatal(err)
	}
	if err := SetHash(desired); err != nil {
		b.Fatal(err)
	}
	return desired
}

// benchLive returns desired as the downstream apiserver stores it: server metadata,
// defaulted fields and a status on top.
func benchLive(b *testing.B, desired *unstructured.Unstructured) *unstructured.Unstructured {
	b.Helper()
	live := desired.DeepCopy()
	live.SetUID("9c0d-0000-4000-8000-000000000002")
	live.SetResourceVersion("1234")
	live.SetGeneration(1)
	annotations := live.GetAnnotations()
	annotations["deployment.kubernetes.io/revision"] = "1"
	live.SetAnnotations(annotations)
	podSpec := live.Object["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})
	podSpec["schedulerName"] = "default-scheduler"
	podSpec["securityContext"] = map[string]interface{}{}
	container := podSpec["containers"].([]interface{})[0].(map[string]interface{})
	container["terminationMessagePath"] = "/dev/termination-log"
	container["terminationMessagePolicy"] = "File"
	live.Object["status"] = map[string]interface{}{"observedGeneration": int64(1), "replicas": int64(3), "readyReplicas": int64(3)}
	return live
}

// BenchmarkChainDown measures the default transformation chain on a Deployment: the deep
// copy, filters, metadata clean-up, spec-diff and owned-fields transformers and the seal.
func BenchmarkChainDown(b *testing.B) {
	chain := DefaultChain()
	tc := namespacedContext(deploymentsGVR)
	upstream := benchObject(b, benchDeployment)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := chain.Down(ctx, tc, upstream); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash measures the spec hash of the transformed Deployment (canonical JSON and
// SHA-256), computed once per processed object.
func BenchmarkHash(b *testing.B) {
	desired := benchDesired(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hash(desired); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNeedsApply measures the decision whether to write: "up-to-date" is the full
// semantic subset walk every unchanged object pays (a restart with N synced objects pays it
// N times); "drift" stops at the first differing field; "hash-changed" and "missing" return
// before any walk.
func BenchmarkNeedsApply(b *testing.B) {
	desired := benchDesired(b)
	upToDate := benchLive(b, desired)
	drifted := benchLive(b, desired)
	containers := drifted.Object["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})["containers"].([]interface{})
	containers[0].(map[string]interface{})["image"] = "registry.example.com/shop/web:drifted"
	hashChanged := benchLive(b, desired)
	annotations := hashChanged.GetAnnotations()
	annotations[SpecHashAnnotation] = "0000000000000000"
	hashChanged.SetAnnotations(annotations)

	for _, bc := range []struct {
		name      string
		live      *unstructured.Unstructured
		wantApply bool
	}{
		{"up-to-date", upToDate, false},
		{"drift", drifted, true},
		{"hash-changed", hashChanged, true},
		{"missing", nil, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if got, reason := NeedsApply(desired, bc.live); got != bc.wantApply {
				b.Fatalf("NeedsApply = %v (%s), want %v", got, reason, bc.wantApply)
			}
			b.ReportAllocs()
			for b.Loop() {
				NeedsApply(desired, bc.live)
			}
		})
	}
}

// BenchmarkStatusForUpstream measures the status diff of the status controller: "equal" is
// the common case (no write), "changed" builds the object for UpdateStatus.
func BenchmarkStatusForUpstream(b *testing.B) {
	upstream := benchObject(b, benchDeployment)
	same := upstream.DeepCopy()
	changed := upstream.DeepCopy()
	changed.Object["status"].(map[string]interface{})["readyReplicas"] = int64(2)
	for _, bc := range []struct {
		name       string
		downstream *unstructured.Unstructured
		wantWrite  bool
	}{
		{"equal", same, false},
		{"changed", changed, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, got := StatusForUpstream(upstream, bc.downstream); got != bc.wantWrite {
				b.Fatalf("StatusForUpstream changed = %v, want %v", got, bc.wantWrite)
			}
			b.ReportAllocs()
			for b.Loop() {
				StatusForUpstream(upstream, bc.downstream)
			}
		})
	}
}
