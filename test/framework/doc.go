// Package framework runs real Kubernetes servers for TMC's integration tests, e2e tests,
// benchmarks and local environment: one etcd, one kube-apiserver per kcp-style workspace
// behind a front proxy that serves /clusters/<path>/..., and physical clusters made of
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok with fake nodes. Every
// server listens on 127.0.0.1 with a free port and logs to a per-environment directory.
// It also injects faults: a TCP proxy that partitions, delays or resets connections, and
// stop/start/kill of any process.
//
// The binaries come from hack/test-binaries.sh (make test-binaries). Nothing here is a mock.
// This package may import client-go and the project's API packages, never controller code.
package framework
