// Command syncerprof is the workload-syncer with net/http/pprof added, for profiling under
// the benchmark harness (go run ./test/bench -pprof DIR). It runs the same code as
// cmd/workload-syncer (options, syncer.New, Run) and only adds --pprof-bind-address; the
// syncer itself is not changed. It is a benchmark tool, not a product binary.
package main
