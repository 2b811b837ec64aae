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
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/component-base/metrics/legacyregistry"

	// Installs client-go's leader-election metrics provider, which registers
	// leader_election_* into legacyregistry when the first elector is built.
	_ "k8s.io/component-base/metrics/prometheus/clientgo/leaderelection"
	// Installs client-go's REST client metrics adapters, which register
	// rest_client_* into legacyregistry when the first REST client is built.
	_ "k8s.io/component-base/metrics/prometheus/restclient"
)

// The component-base aggregate package .../metrics/prometheus/clientgo is
// not imported on purpose: it also makes component-base the default
// workqueue metrics provider, so queues would record a second workqueue_*
// set into legacyregistry beside the one of WorkqueueMetricsProvider.

// clientGoMetricPrefixes lists the families that TMCMetrics.Handler serves
// from component-base's global legacyregistry, where client-go's metrics
// adapters register them once per process. Only these families are taken
// from there, so the Go and process collectors that legacyregistry also
// holds are not exported twice.
var clientGoMetricPrefixes = []string{"rest_client_", "leader_election_"}

// clientGoGatherer is the process-wide gatherer of the client-go metric
// families; every TMCMetrics serves it beside its own registry.
var clientGoGatherer prometheus.Gatherer = prefixGatherer{
	gatherer: legacyregistry.DefaultGatherer,
	prefixes: clientGoMetricPrefixes,
}

// prefixGatherer passes on the metric families of gatherer whose names start
// with one of prefixes.
type prefixGatherer struct {
	gatherer prometheus.Gatherer
	prefixes []string
}

// Gather implements prometheus.Gatherer.
func (g prefixGatherer) Gather() ([]*dto.MetricFamily, error) {
	families, err := g.gatherer.Gather()
	kept := families[:0]
	for _, mf := range families {
		for _, prefix := range g.prefixes {
			if strings.HasPrefix(mf.GetName(), prefix) {
				kept = append(kept, mf)
				break
			}
		}
	}
	if err != nil {
		return kept, fmt.Errorf("failed to gather client-go metrics: %w", err)
	}
	return kept, nil
}
