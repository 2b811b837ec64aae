// Package workload assembles `kubectl tmc workload`: registering a physical cluster (sync),
// seeing what TMC does (status, preview), scheduling controls (cordon, uncordon, drain) and
// resume-deletions (the syncer's mass-deletion breaker).
// The subcommands live in subpackages; this package only wires them.
//
// It must not import the reconcilers or anything under test/.
package workload
