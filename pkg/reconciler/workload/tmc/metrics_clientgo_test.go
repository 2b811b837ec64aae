/*
Copyright The TMC Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package tmc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func TestMetricsRESTClient(t *testing.T) {
	apiserver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"]}`)
	}))
	t.Cleanup(apiserver.Close)

	client, err := rest.RESTClientFor(&rest.Config{
		Host: apiserver.URL,
		ContentConfig: rest.ContentConfig{
			GroupVersion:         &schema.GroupVersion{Version: "v1"},
			NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		},
	})
	if err != nil {
		t.Fatalf("failed to create REST client: %v", err)
	}
	if err := client.Get().AbsPath("/api").Do(t.Context()).Error(); err != nil {
		t.Fatalf("failed to GET /api: %v", err)
	}

	// Two TMCMetrics in one process serve the same process-wide series.
	host := strings.TrimPrefix(apiserver.URL, "http://")
	for _, component := range []string{"syncer", "tmc-controller"} {
		families := scrapeMetrics(t, NewTMCMetrics(component))
		requests := mustFindSeries(t, families, "rest_client_requests_total",
			map[string]string{"host": host, "method": "GET", "code": "200"})
		if got := requests.GetCounter().GetValue(); got < 1 {
			t.Errorf("%s: rest_client_requests_total = %v, want >= 1", component, got)
		}
		mustFindSeries(t, families, "rest_client_request_duration_seconds", map[string]string{"host": host, "verb": "GET"})
	}
}

func TestMetricsLeaderElection(t *testing.T) {
	const lease = "tmc-metrics-test"
	m := NewTMCMetrics("tmc-controller")
	leading := make(chan struct{})
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          &memoryLock{identity: "test"},
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
		Name:          lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(leading) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatalf("failed to create leader elector: %v", err)
	}
	// The collector is registered as soon as an elector exists.
	status := mustFindSeries(t, scrapeMetrics(t, m), "leader_election_master_status", map[string]string{"name": lease})
	if got := status.GetGauge().GetValue(); got != 0 {
		t.Errorf("leader_election_master_status before leading = %v, want 0", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { defer close(stopped); elector.Run(ctx) }()
	select {
	case <-leading:
	case <-time.After(30 * time.Second):
		t.Fatal("elector did not become leader")
	}
	status = mustFindSeries(t, scrapeMetrics(t, m), "leader_election_master_status", map[string]string{"name": lease})
	if got := status.GetGauge().GetValue(); got != 1 {
		t.Errorf("leader_election_master_status while leading = %v, want 1", got)
	}

	cancel()
	<-stopped
}

func TestMetricsOnlyDocumentedPrefixes(t *testing.T) {
	m := NewTMCMetrics("syncer")
	m.MustRegisterCounterVec("syncer_resources_synced_total", "Synced.", []string{"direction"}).WithLabelValues("down").Inc()
	NewComponentHealthManager("syncer", WithHealthRegisterer(m.Registerer())).SetComponentStatus("heartbeat", nil)

	// The client-go families from legacyregistry must not collide with the
	// registry's own (Go and process collectors, workqueue_*).
	if _, err := (prometheus.Gatherers{m.Registry(), clientGoGatherer}).Gather(); err != nil {
		t.Errorf("failed to gather: %v", err)
	}
	prefixes := []string{"syncer_", "tmc_", "workqueue_", "rest_client_", "leader_election_", "go_", "process_", "promhttp_"}
	for name := range scrapeMetrics(t, m) {
		documented := false
		for _, prefix := range prefixes {
			documented = documented || strings.HasPrefix(name, prefix)
		}
		if !documented {
			t.Errorf("family %s has none of the documented prefixes %v", name, prefixes)
		}
	}
}

// memoryLock is a resourcelock.Interface kept in memory, enough for one
// elector in one process.
type memoryLock struct {
	identity string

	mu     sync.Mutex
	record *resourcelock.LeaderElectionRecord
}

var _ resourcelock.Interface = &memoryLock{}

func (l *memoryLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.record == nil {
		return nil, nil, apierrors.NewNotFound(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "test")
	}
	raw, err := json.Marshal(l.record)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to encode the leader election record: %w", err)
	}
	record := *l.record
	return &record, raw, nil
}

func (l *memoryLock) Create(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record = &ler
	return nil
}

func (l *memoryLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.Create(ctx, ler)
}

func (l *memoryLock) RecordEvent(string) {}

func (l *memoryLock) Identity() string { return l.identity }

func (l *memoryLock) Describe() string { return "memory/" + l.identity }
