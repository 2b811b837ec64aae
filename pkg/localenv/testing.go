package localenv

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// TestingT is the part of testing.TB the test helpers use. The package does not import
// testing: it ships in kubectl-tmc.
type TestingT interface {
	Helper()
	Context() context.Context
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// StartForTest starts an environment for a test or benchmark: it is stopped when the test
// ends; on failure the tail of every process log is printed and the directory kept.
func StartForTest(t TestingT, opts Options) *Environment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("failed to start the test environment: %v", err)
	}
	t.Logf("test environment up in %s (dir %s)", env.StartupDuration().Round(time.Millisecond), env.Dir)
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop the test environment: %v", err)
		}
		if t.Failed() {
			tails := env.LogTails(60)
			names := make([]string, 0, len(tails))
			for n := range tails {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				t.Logf("----- last lines of %s -----\n%s", n, tails[n])
			}
			t.Logf("logs kept in %s", env.LogDir)
			return
		}
		_ = env.RemoveDir()
	})
	return env
}

// Main runs a test binary's tests and then kills any process this package started that a
// test forgot to stop, failing the run if there was one. Use it from TestMain.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if left := RunningProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "localenv: processes left running after the tests: %s; killing them\n", strings.Join(left, ", "))
		_ = KillAll()
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Eventually is Poll for tests: it fails t, naming what it waited for and the last status
// cond reported, if cond does not hold within timeout.
func Eventually(t TestingT, interval, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	if err := Poll(t.Context(), interval, timeout, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}
