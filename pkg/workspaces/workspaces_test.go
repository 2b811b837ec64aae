package workspaces

import (
	"testing"

	"k8s.io/client-go/rest"
)

func TestNewReachesWorkspaceBelowRoot(t *testing.T) {
	w, err := New(&rest.Config{Host: "https://proxy.example:6443"}, "root:org:a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Kube.Discovery().RESTClient().Get().URL().String(); got != "https://proxy.example:6443/clusters/root:org:a" {
		t.Errorf("workspace URL %q, want the /clusters/ URL of the path", got)
	}
}

// TestNewHubSet: on a plain hub the one cluster, at the base URL itself, is the location and
// the workload workspace, under the path the syncer uses in hub mode ("hub"), so that both
// sides compute the same SyncTarget keys.
func TestNewHubSet(t *testing.T) {
	set, err := NewHubSet(&rest.Config{Host: "https://hub.example:6443"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	loc, work := set.Location[HubWorkspace], set.Workload[HubWorkspace]
	if loc == nil || work == nil || loc != work || len(set.Location) != 1 || len(set.Workload) != 1 {
		t.Fatalf("hub set %+v: want one workspace %q as both location and workload workspace", set, HubWorkspace)
	}
	if loc.Path != "hub" {
		t.Errorf("hub workspace path %q, want %q (the syncer's name for a plain hub)", loc.Path, "hub")
	}
	if got := loc.Kube.Discovery().RESTClient().Get().URL().String(); got != "https://hub.example:6443/" {
		t.Errorf("hub URL %q, want the hub itself (no /clusters/)", got)
	}
	if all := set.All(); len(all) != 1 || all[0] != loc {
		t.Errorf("All() = %v, want the hub once", all)
	}
}
