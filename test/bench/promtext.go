package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type samples []sample

// parseSamples reads the text exposition format: "name{k="v",...} value [timestamp]".
// Comments and malformed lines are skipped.
func parseSamples(body string) samples {
	var out samples
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		s, ok := parseSampleLine(line)
		if ok {
			out = append(out, s)
		}
	}
	return out
}

func parseSampleLine(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, false
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if rest == "" {
				return s, false
			}
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq < 0 || eq+1 >= len(rest) || rest[eq+1] != '"' {
				return s, false
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var b strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						b.WriteByte('\n')
					default:
						b.WriteByte(rest[j])
					}
					continue
				}
				b.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, false
			}
			s.labels[key] = b.String()
			rest = rest[j+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

// sum adds the values of the samples of metric name whose labels include every given pair.
func (ss samples) sum(name string, match map[string]string) float64 {
	var total float64
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
		}
	}
	return total
}

// writeVerbs are the verbs of apiserver_request_total that change state.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true}

// readVerbs are the verbs of apiserver_request_total that read one object or a list.
var readVerbs = map[string]bool{"GET": true, "LIST": true}

// requestCounts are the requests an apiserver served, by resource[/subresource] and verb.
type requestCounts map[string]map[string]float64

// scrapeRequests reads apiserver_request_total of the apiserver behind cfg (admin, direct).
func scrapeRequests(ctx context.Context, cfg *rest.Config) (requestCounts, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	body, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s/metrics: %w", cfg.Host, err)
	}
	out := requestCounts{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		s, ok := parseSampleLine(line)
		if !ok {
			continue
		}
		res := s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			res += "/" + sub
		}
		if out[res] == nil {
			out[res] = map[string]float64{}
		}
		out[res][s.labels["verb"]] += s.value
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
