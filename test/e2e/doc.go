// Package e2e runs TMC's real binaries as processes against real servers started by
// pkg/localenv: workspaces behind a kcp-style front proxy and kwok physical clusters.
//
// Production code must not import it; it reaches the binaries only as processes.
package e2e
