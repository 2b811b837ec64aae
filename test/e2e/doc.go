// Package e2e runs TMC's real binaries as processes against real servers started by
// pkg/localenv: workspaces behind a kcp-style front proxy and kwok physical clusters.
//
// Every test starts its own environment and calls t.Parallel, except TestDevUpStatusDown
// (its `kubectl tmc dev up` is another process, whose free ports this process's port
// bookkeeping cannot see), which therefore runs alone; `make test-e2e` runs two at a time
// (-parallel 2): most of a test's time is spent waiting on servers and controllers, and two
// environments fit the machine's two cores. A new test must not use t.Setenv or anything
// process-wide.
//
// Production code must not import it; it reaches the binaries only as processes.
package e2e
