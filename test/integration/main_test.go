package integration

import (
	"os"
	"testing"

	"github.com/tmc-dev/tmc/pkg/localenv"
)

func TestMain(m *testing.M) {
	os.Exit(localenv.Main(m))
}
