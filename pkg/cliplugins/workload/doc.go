// Package workload assembles `kubectl tmc workload`: registering a physical cluster (sync),
// seeing what TMC does (status, preview) and scheduling controls (cordon, uncordon, drain).
// The subcommands live in subpackages; this package only wires them.
//
// It must not import the reconcilers or anything under test/.
package workload
