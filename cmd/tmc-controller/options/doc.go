// Package options holds the tmc-controller's flags, their validation, and the conversion
// into clients. The leader-election flags are pkg/cliutil's, shared with the syncer; the
// logging flags are added by main through pkg/cliutil.
//
// This package must not start anything and must not import the controllers
// (pkg/reconciler/...): it only reads flags and the upstream kubeconfig.
package options
