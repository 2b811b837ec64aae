// Package options holds the workload-syncer's command-line flags: their defaults, their
// validation, and their translation into a syncer.Config (kubeconfigs loaded, rate limits and
// user agent applied, workspace paths and resources parsed, leader election resolved).
//
// The component-base logging flags are not here: main adds them through pkg/cliutil. This
// package must not start anything; it only reads flags, kubeconfig files and the pod's
// environment (downward API variables and the service-account namespace file).
package options
