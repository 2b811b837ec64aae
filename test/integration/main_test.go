// Package integration holds integration tests that run real etcd, kube-apiservers,
// controller-managers, schedulers and kwok through test/framework.
package integration

import (
	"os"
	"testing"

	"github.com/tmc-dev/tmc/test/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m))
}
