// Package dev implements `kubectl tmc dev up|down|status`: a complete local TMC environment
// in one command. `up` builds what is missing, then starts the hidden `dev serve` command as
// a detached background process that runs the environment (pkg/localenv servers: etcd, a
// location and a workload workspace behind the kcp-style front proxy, kwok physical
// clusters; plus tmc-controller and one workload-syncer per cluster), sets it up (CRDs,
// SyncTargets, RBAC, a Placement and a sample app) and records what it runs in
// <dir>/state.json. `down` stops it and checks that nothing is left running.
//
// The package owns the files under its --dir (default ./.tmc-dev). It may import
// pkg/localenv and the project's API and client packages, never controller code.
package dev
