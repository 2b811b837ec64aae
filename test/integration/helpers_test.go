package integration

import (
	"testing"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

func mustPath(t *testing.T, s string) logicalcluster.Path {
	t.Helper()
	p, err := logicalcluster.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
