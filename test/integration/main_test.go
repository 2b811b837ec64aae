// Package integration holds integration tests that run real etcd, kube-apiservers,
// controller-managers, schedulers and kwok through pkg/localenv.
package integration

import (
	"os"
	"testing"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

func TestMain(m *testing.M) {
	os.Exit(localenv.Main(m))
}
