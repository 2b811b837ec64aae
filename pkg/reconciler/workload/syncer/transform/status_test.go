package transform

import "testing"

func TestStatus(t *testing.T) {
	up := func(status string) string {
		return `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "resourceVersion": "10"}, "spec": {"replicas": 3}` + status + `}`
	}
	down := func(status string) string {
		return `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "kcp-0123456789ab", "resourceVersion": "99"}, "spec": {"replicas": 1}` + status + `}`
	}

	tests := []struct {
		name       string
		upstream   string
		downstream string
		wantEqual  bool
		// want is the expected result of StatusForUpstream when a write is needed.
		want string
	}{
		{
			name:       "both missing",
			upstream:   up(""),
			downstream: down(""),
			wantEqual:  true,
		},
		{
			name:       "missing and empty",
			upstream:   up(""),
			downstream: down(`, "status": {}`),
			wantEqual:  true,
		},
		{
			name:       "equal with int and float",
			upstream:   up(`, "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]}`),
			downstream: down(`, "status": {"replicas": 3.0, "conditions": [{"type": "Available", "status": "True"}]}`),
			wantEqual:  true,
		},
		{
			name:       "new downstream status",
			upstream:   up(""),
			downstream: down(`, "status": {"replicas": 1}`),
			want:       up(`, "status": {"replicas": 1}`),
		},
		{
			name:       "changed value",
			upstream:   up(`, "status": {"replicas": 3, "readyReplicas": 2}`),
			downstream: down(`, "status": {"replicas": 3, "readyReplicas": 3}`),
			want:       up(`, "status": {"replicas": 3, "readyReplicas": 3}`),
		},
		{
			name:       "field removed downstream",
			upstream:   up(`, "status": {"replicas": 3, "readyReplicas": 2}`),
			downstream: down(`, "status": {"replicas": 3}`),
			want:       up(`, "status": {"replicas": 3}`),
		},
		{
			name:       "condition added",
			upstream:   up(`, "status": {"conditions": [{"type": "Available", "status": "True"}]}`),
			downstream: down(`, "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}`),
			want:       up(`, "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}`),
		},
		{
			name:       "downstream status gone",
			upstream:   up(`, "status": {"replicas": 3}`),
			downstream: down(""),
			want:       up(""),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream, downstream := obj(t, tt.upstream), obj(t, tt.downstream)
			upBefore, downBefore := upstream.DeepCopy(), downstream.DeepCopy()

			if got := StatusEqual(upstream, downstream); got != tt.wantEqual {
				t.Errorf("StatusEqual() = %v, want %v", got, tt.wantEqual)
			}
			if got := StatusEqual(downstream, upstream); got != tt.wantEqual {
				t.Errorf("StatusEqual() is not symmetric: reversed = %v, want %v", got, tt.wantEqual)
			}

			got, needed := StatusForUpstream(upstream, downstream)
			if needed == tt.wantEqual {
				t.Fatalf("StatusForUpstream() needed = %v, want %v", needed, !tt.wantEqual)
			}
			if needed {
				expectObject(t, got, obj(t, tt.want))
				// The result is independent of the downstream object.
				if status, ok := got.Object["status"].(map[string]interface{}); ok {
					status["mutated"] = true
				}
			} else if got != nil {
				t.Errorf("StatusForUpstream() returned an object although no write is needed")
			}
			expectUnchanged(t, upBefore, upstream)
			expectUnchanged(t, downBefore, downstream)
		})
	}
}

func TestStatusForUpstreamNil(t *testing.T) {
	if got, needed := StatusForUpstream(nil, obj(t, `{"status": {"a": 1}}`)); got != nil || needed {
		t.Errorf("StatusForUpstream(nil, ...) = %v, %v; want nil, false", got, needed)
	}
	if !StatusEqual(nil, nil) {
		t.Error("StatusEqual(nil, nil) = false")
	}
}
