package inspect

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"

	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testNow is the fixed clock of every test.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// fakeUpstream serves fake clients instead of connecting.
type fakeUpstream struct {
	currentWorkspace string
	// tmc holds the TMC client of each workspace path; "" is the current workspace.
	tmc     map[string]tmcclient.Interface
	dynamic dynamic.Interface
	mapper  meta.RESTMapper
	ns      string
}

func (f *fakeUpstream) workspace() (string, error) { return f.currentWorkspace, nil }

func (f *fakeUpstream) tmcClient(path string) (tmcclient.Interface, error) {
	c, ok := f.tmc[path]
	if !ok {
		return nil, fmt.Errorf("no workspace %q in this test", path)
	}
	return c, nil
}

func (f *fakeUpstream) dynamicClient() (dynamic.Interface, error) { return f.dynamic, nil }

func (f *fakeUpstream) restMapper() (meta.RESTMapper, error) { return f.mapper, nil }

func (f *fakeUpstream) namespace() (string, error) {
	if f.ns == "" {
		return "default", nil
	}
	return f.ns, nil
}

// execute runs cmd with args and returns its stdout and stderr.
func execute(t *testing.T, cmd *cobra.Command, streams genericiooptions.IOStreams, args ...string) error {
	t.Helper()
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	cmd.SetArgs(args)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	return cmd.ExecuteContext(t.Context())
}

func newStreams() (genericiooptions.IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: out, ErrOut: errOut}, out, errOut
}

// checkGolden compares got with testdata/<name>, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failed to read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
