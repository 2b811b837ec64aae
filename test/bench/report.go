package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
)

// Verdicts of a figure with a DESIGN §6 target; figures without one are informational.
const (
	pass = "PASS"
	miss = "MISS"
)

// row is one line of the result table.
type row struct {
	scenario string
	figure   string
	value    string
	baseline string
	target   string // ratio and/or target
	verdict  string // PASS, MISS or empty
}

// report collects the table and the details printed under it.
type report struct {
	mu      sync.Mutex
	header  []string
	rows    []row
	details []string
}

func (r *report) add(rw row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, rw)
}

func (r *report) detail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.details = append(r.details, fmt.Sprintf(format, args...))
}

func verdict(ok bool) string {
	if ok {
		return pass
	}
	return miss
}

// printText writes the aligned table and the details.
func (r *report) printText(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.header {
		_, _ = fmt.Fprintln(w, h)
	}
	_, _ = fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tBASELINE\tRATIO / TARGET\tRESULT")
	for _, rw := range r.rows {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rw.scenario, rw.figure, rw.value, dash(rw.baseline), dash(rw.target), dash(rw.verdict))
	}
	_ = tw.Flush()
	if len(r.details) > 0 {
		_, _ = fmt.Fprintln(w, "\nDetails:")
		for _, d := range r.details {
			_, _ = fmt.Fprintln(w, "  - "+d)
		}
	}
}

// printMarkdown writes the same as a Markdown section.
func (r *report) printMarkdown(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.header {
		_, _ = fmt.Fprintln(w, h+"  ")
	}
	_, _ = fmt.Fprintln(w)
	_, _ = fmt.Fprintln(w, "| Scenario | Figure | Value | Baseline | Ratio / target | Result |")
	_, _ = fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, rw := range r.rows {
		_, _ = fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", md(rw.scenario), md(rw.figure), md(rw.value), md(dash(rw.baseline)), md(dash(rw.target)), md(dash(rw.verdict)))
	}
	if len(r.details) > 0 {
		_, _ = fmt.Fprintln(w, "\nDetails:")
		_, _ = fmt.Fprintln(w)
		for _, d := range r.details {
			_, _ = fmt.Fprintln(w, "- "+d)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func md(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
