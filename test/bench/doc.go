// Command bench is TMC's benchmark harness: it starts a real environment with
// pkg/localenv (one etcd, a location workspace and five workload workspaces behind the
// front proxy, one kwok physical cluster), builds and runs the real workload-syncer binary
// as a process, runs scenarios B0–B7 of issue 7 and prints every figure next to its baseline
// and its DESIGN §6 target.
//
//	go run ./test/bench            # full run, N=10,000 (about 10 minutes on 2 cores)
//	go run ./test/bench -quick     # CI smoke test, N=300 (about 2 minutes)
//	go run ./test/bench -out f.md  # also write the table as Markdown
//
// The exit status is non-zero only when the harness itself fails (a server does not start,
// an object never arrives, an API call fails); missed targets are reported, never fatal.
// See docs/benchmarks.md for what each scenario measures and how.
//
// Production code must not import it.
package main
