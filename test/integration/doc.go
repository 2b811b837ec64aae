// Package integration holds integration tests that run real etcd, kube-apiservers,
// controller-managers, schedulers and kwok through pkg/localenv.
//
// Production code must not import it.
package integration
