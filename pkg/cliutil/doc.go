// Package cliutil holds what every TMC command shares: the --version flag, the
// component-base logging flags (-v, --logging-format=json, ...), the signal context of a
// main, and the start-up of a long-running component (RunComponent: metrics and health
// servers, a preparation step, leader election through a Lease, and the exit status when
// the lease is lost) with its leader-election flags (LeaderElectionFlags).
//
// It is imported by every binary, kubectl-tmc included, so it must build on every system
// kubectl runs on, and it must not import the reconcilers (pkg/reconciler/...), the
// plugins (pkg/cliplugins/...) or test code (test/...): components hand it their handlers
// and run functions instead.
package cliutil
