package localenv

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeGateway answers etcd's range and compaction calls the way etcd's JSON gateway does,
// and records the compaction requests.
type fakeGateway struct {
	revision    string
	compactions []map[string]any
	failCompact bool
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, `{"error":"bad request","code":3}`, http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/v3/kv/range":
		key, _ := base64.StdEncoding.DecodeString(req["key"].(string))
		if string(key) != revisionProbeKey || req["count_only"] != true {
			http.Error(w, `{"error":"unexpected range"}`, http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(`{"header":{"cluster_id":"1","member_id":"2","revision":` + g.revision + `,"raft_term":"3"}}`))
	case "/v3/kv/compaction":
		g.compactions = append(g.compactions, req)
		if g.failCompact {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"etcdserver: mvcc: required revision has been compacted","code":11}`))
			return
		}
		_, _ = w.Write([]byte(`{"header":{"revision":"42"}}`))
	default:
		http.NotFound(w, r)
	}
}

func TestEtcdCompactToCurrent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		revision string
	}{
		{"proto3 JSON string", `"42"`},
		{"plain number", `42`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGateway{revision: tc.revision}
			srv := httptest.NewServer(g)
			defer srv.Close()
			e := &Etcd{ClientURL: srv.URL}
			rev, err := e.CompactToCurrent(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if rev != 42 {
				t.Errorf("CompactToCurrent returned revision %d, want 42", rev)
			}
			if len(g.compactions) != 1 {
				t.Fatalf("%d compaction requests, want 1", len(g.compactions))
			}
			// A compaction that returns before the old revisions are gone would let a watch
			// from an old resourceVersion still succeed.
			if got := g.compactions[0]; got["revision"] != "42" || got["physical"] != true {
				t.Errorf("compaction request %v, want revision 42, physical", got)
			}
		})
	}
}

func TestEtcdGatewayErrors(t *testing.T) {
	g := &fakeGateway{revision: `"0"`}
	srv := httptest.NewServer(g)
	defer srv.Close()
	e := &Etcd{ClientURL: srv.URL}
	if _, err := e.Revision(t.Context()); err == nil {
		t.Error("Revision accepted an answer without a revision")
	}
	g.failCompact = true
	err := e.Compact(t.Context(), 7)
	if err == nil || !strings.Contains(err.Error(), "required revision has been compacted") {
		t.Errorf("Compact error %v, want one carrying etcd's message", err)
	}
}
