package v1alpha1

import "testing"

func TestSyncerVirtualWorkspacePath(t *testing.T) {
	u := SyncerVirtualWorkspaceURL("https://127.0.0.1:6443/", "1x2y3z", "east", "uid-1")
	if want := "https://127.0.0.1:6443/services/syncer/1x2y3z/east/uid-1"; u != want {
		t.Fatalf("URL = %q, want %q", u, want)
	}
	p, ok := ParseSyncerVirtualWorkspacePath("/services/syncer/1x2y3z/east/uid-1/clusters/*/api/v1/namespaces")
	if !ok || p.LocationCluster != "1x2y3z" || p.SyncTargetName != "east" || p.SyncTargetUID != "uid-1" || p.Rest != "/clusters/*/api/v1/namespaces" {
		t.Fatalf("parse = %+v, %v", p, ok)
	}
	if p, ok := ParseSyncerVirtualWorkspacePath("/services/syncer/1x2y3z/east/uid-1"); !ok || p.Rest != "" {
		t.Fatalf("parse without rest = %+v, %v", p, ok)
	}
	for _, bad := range []string{"/services/syncer/", "/services/syncer/a/b", "/services/syncer/a//c/x", "/clusters/a/b/c", "/services/upsyncer/a/b/c"} {
		if _, ok := ParseSyncerVirtualWorkspacePath(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestUpsyncerVirtualWorkspacePath(t *testing.T) {
	u := UpsyncerVirtualWorkspaceURL("https://127.0.0.1:6443", "1x2y3z", "east", "uid-1")
	if want := "https://127.0.0.1:6443/services/upsyncer/1x2y3z/east/uid-1"; u != want {
		t.Fatalf("URL = %q, want %q", u, want)
	}
	p, ok := ParseUpsyncerVirtualWorkspacePath(u[len("https://127.0.0.1:6443"):] + "/clusters/*/api/v1/pods")
	if !ok || p.SyncTargetName != "east" || p.Rest != "/clusters/*/api/v1/pods" {
		t.Fatalf("parse = %+v, %v", p, ok)
	}
	if _, ok := ParseUpsyncerVirtualWorkspacePath("/services/syncer/1x2y3z/east/uid-1"); ok {
		t.Error("a syncer-view path parsed as an upsyncer-view path")
	}
}
