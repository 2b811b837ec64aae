// Command bench is TMC's benchmark harness: it starts a real environment with
// pkg/localenv (one etcd, a location workspace and five workload workspaces behind the
// front proxy, one kwok physical cluster), builds and runs the real workload-syncer binary
// as a process, runs scenarios B0–B7 of issue 7 and prints every figure next to its baseline
// and its DESIGN §6 target.
//
// B8 (issue 13) is opt-in and runs on an environment of its own: W workload workspaces
// (default 100, one small kube-apiserver each, started in batches) with one placed
// namespace of 20 ConfigMaps each, synced by one syncer in direct mode and then by one in
// virtual-workspace mode through tmc-virtual-workspaces; it reports the watches each holds
// upstream, throughput, sync latency and RSS/CPU of both modes side by side.
//
//	go run ./test/bench            # full run, N=10,000 (about 10 minutes on 2 cores)
//	go run ./test/bench -quick     # CI smoke test, N=300 (about 2 minutes)
//	go run ./test/bench -out f.md  # also write the table as Markdown
//	go run ./test/bench -only B8 -workspaces 100  # B8 only
//
// The exit status is non-zero only when the harness itself fails (a server does not start,
// an object never arrives, an API call fails); missed targets are reported, never fatal.
// See docs/benchmarks.md for what each scenario measures and how.
//
// Production code must not import it.
package main
