package release

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmc-dev/tmc/pkg/workspaces"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

func TestNewControllerValidation(t *testing.T) {
	env := newTestEnv(t, syncTarget(), nil, nil)
	set := &workspaces.Set{}
	for name, build := range map[string]func() (*Controller, error){
		"no set":         func() (*Controller, error) { return NewController(nil, env.c.objects, Options{}) },
		"no objects":     func() (*Controller, error) { return NewController(set, nil, Options{}) },
		"negative grace": func() (*Controller, error) { return NewController(set, env.c.objects, Options{Grace: -time.Second}) },
		"location workspace without clients": func() (*Controller, error) {
			return NewController(&workspaces.Set{Location: map[string]*workspaces.Workspace{"root:l": {Path: "root:l"}}}, env.c.objects, Options{})
		},
	} {
		if _, err := build(); err == nil {
			t.Errorf("%s: NewController succeeded, want an error", name)
		}
	}
	if env.c.grace != testGrace || env.c.threshold != testThresh {
		t.Errorf("grace %s threshold %s, want the options' %s and %s", env.c.grace, env.c.threshold, testGrace, testThresh)
	}
}

// TestNamespaceChangesQueueReleasingTargets checks the namespace handler: a change of a
// namespace carrying the key of a SyncTarget that may have objects to release queues it,
// one of a healthy SyncTarget does not.
func TestNamespaceChangesQueueReleasingTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *workloadv1alpha1.SyncTarget
		want bool
	}{
		{name: "healthy", st: syncTarget(heartbeatAgo(time.Second, true))},
		{name: "heartbeat lost", st: syncTarget(heartbeatAgo(time.Hour, false)), want: true},
		{name: "being deleted", st: syncTarget(heartbeatAgo(time.Second, true), deletedAgo(time.Second)), want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, tc.st, []*corev1.Namespace{namespace("web", nil, nil)}, nil)
			waitFor(t, "the SyncTarget's add event", func() bool { return env.c.queue.Len() == 1 })
			env.c.queue.Drain()
			update := func(labels map[string]string) {
				ns := namespace("web", labels, nil)
				if _, err := env.kube.CoreV1().Namespaces().Update(t.Context(), ns, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// A namespace without keys of any target: nothing.
			update(map[string]string{"app": "web"})
			waitFor(t, "the unrelated update in the cache", func() bool { return env.cachedNamespace("web").Labels["app"] == "web" })
			if keys := env.c.queue.Drain(); len(keys) != 0 {
				t.Errorf("queued %v for a namespace without target keys", keys)
			}
			update(map[string]string{eastLabel: syncValue})
			if tc.want {
				waitFor(t, "east queued", func() bool { return env.c.queue.Len() > 0 })
			} else {
				waitFor(t, "the labelled namespace in the cache", func() bool { return hasKey(env.cachedNamespace("web").Labels, eastLabel) })
			}
			keys := env.c.queue.Drain()
			if got := len(keys) == 1 && keys[0] == (syncTargetKey{workspace: testLocation, name: "east"}); got != tc.want {
				t.Errorf("queued %v, want east queued: %v", keys, tc.want)
			}
		})
	}
}
