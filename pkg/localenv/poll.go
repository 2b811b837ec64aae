package localenv

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Poll calls cond every interval, the first time at once, until it reports done, returns an
// error, or timeout passes or ctx ends. cond also returns a short status (what it saw), which
// the timeout error carries, so that a failure says how far things got.
//
// It is the one poll loop of the environment, its tests and the benchmarks.
func Poll(ctx context.Context, interval, timeout time.Duration, cond func(ctx context.Context) (done bool, status string, err error)) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		done, status, err := cond(ctx)
		last = status
		return done, err
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w; last status: %s", err, last)
	}
	return err
}
