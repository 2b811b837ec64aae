package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

// writeVerbs are the verbs of apiserver_request_total that change state.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true}

// readVerbs are the verbs of apiserver_request_total that read one object or a list.
var readVerbs = map[string]bool{"GET": true, "LIST": true}

// requestCounts are the requests an apiserver served, by resource[/subresource] and verb.
type requestCounts map[string]map[string]float64

// scrapeRequests reads apiserver_request_total of the apiserver behind cfg (admin, direct).
func scrapeRequests(ctx context.Context, cfg *rest.Config) (requestCounts, error) {
	m, err := localenv.ScrapeAPIServerMetrics(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := requestCounts{}
	for _, s := range m.Samples("apiserver_request_total") {
		res := s.Labels["resource"]
		if sub := s.Labels["subresource"]; sub != "" {
			res += "/" + sub
		}
		if out[res] == nil {
			out[res] = map[string]float64{}
		}
		out[res][s.Labels["verb"]] += s.Value
	}
	return out, nil
}

// minus returns the counts of c minus before.
func (c requestCounts) minus(before requestCounts) requestCounts {
	out := requestCounts{}
	for res, verbs := range c {
		for verb, v := range verbs {
			if d := v - before[res][verb]; d != 0 {
				if out[res] == nil {
					out[res] = map[string]float64{}
				}
				out[res][verb] = d
			}
		}
	}
	return out
}

// total sums the writes to the given resources (every resource when none is given).
func (c requestCounts) total(resources ...string) float64 {
	return c.sum(writeVerbs, resources)
}

func (c requestCounts) sum(verbs map[string]bool, resources []string) float64 {
	var t float64
	for res, byVerb := range c {
		if len(resources) > 0 && !containsString(resources, res) {
			continue
		}
		for verb, v := range byVerb {
			if verbs[verb] {
				t += v
			}
		}
	}
	return t
}

// String prints the writes as "resource VERB=n ..." sorted, for the details.
func (c requestCounts) String() string { return c.format(writeVerbs) }

// readsString prints the reads like String.
func (c requestCounts) readsString() string { return c.format(readVerbs) }

func (c requestCounts) format(verbs map[string]bool) string {
	var parts []string
	for res, byVerb := range c {
		var vs []string
		for verb, v := range byVerb {
			if verbs[verb] {
				vs = append(vs, fmt.Sprintf("%s=%.0f", verb, v))
			}
		}
		if len(vs) == 0 {
			continue
		}
		sort.Strings(vs)
		parts = append(parts, res+" "+strings.Join(vs, ","))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
