package logicalcluster

import "testing"

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"root", false},
		{"root:org:team-a", false},
		{"2x9ok3p1l0q8y7z", false},
		{"", true},
		{"root::a", true},
		{"root:Team", true},
		{"root:-a", true},
		{"root:a-", true},
		{"root:a_b", true},
		{"root:" + string(make([]byte, 64)), true},
	} {
		_, err := ParsePath(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParsePath(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
		}
	}
}

func TestPathParts(t *testing.T) {
	p := NewPath("root:org:team-a")
	if got := p.Base(); got != "team-a" {
		t.Errorf("Base() = %q", got)
	}
	parent, ok := p.Parent()
	if !ok || parent.String() != "root:org" {
		t.Errorf("Parent() = %q, %v", parent, ok)
	}
	if _, ok := NewPath("root").Parent(); ok {
		t.Errorf("Parent() of a one-segment path must report false")
	}
	if got := NewPath("root").Join("a").Join("b").String(); got != "root:a:b" {
		t.Errorf("Join = %q", got)
	}
	if got := (Path{}).Join("root").String(); got != "root" {
		t.Errorf("Join on empty = %q", got)
	}
	if got := p.RequestPath(); got != "/clusters/root:org:team-a" {
		t.Errorf("RequestPath() = %q", got)
	}
}

func TestWorkspaceURL(t *testing.T) {
	for _, tc := range []struct{ base, path, want string }{
		{"https://127.0.0.1:6443", "root:a", "https://127.0.0.1:6443/clusters/root:a"},
		{"https://127.0.0.1:6443/", "root:a", "https://127.0.0.1:6443/clusters/root:a"},
		{"https://127.0.0.1:6443/clusters/root:b", "root:a", "https://127.0.0.1:6443/clusters/root:a"},
		{"https://proxy.example/kcp/clusters/root:b", "root:a:c", "https://proxy.example/kcp/clusters/root:a:c"},
	} {
		got, err := WorkspaceURL(tc.base, NewPath(tc.path))
		if err != nil || got != tc.want {
			t.Errorf("WorkspaceURL(%q, %q) = %q, %v; want %q", tc.base, tc.path, got, err, tc.want)
		}
	}
	if _, err := WorkspaceURL("://bad", NewPath("root")); err == nil {
		t.Errorf("expected an error for an unparsable URL")
	}
}

func TestSplitClusterURL(t *testing.T) {
	for _, tc := range []struct{ in, prefix, path string }{
		{"/clusters/root:a/api/v1/namespaces", "", "root:a"},
		{"/kcp/clusters/root:a", "/kcp", "root:a"},
		{"/api/v1/namespaces", "/api/v1/namespaces", ""},
	} {
		prefix, p := SplitClusterURL(tc.in)
		if prefix != tc.prefix || p.String() != tc.path {
			t.Errorf("SplitClusterURL(%q) = %q, %q; want %q, %q", tc.in, prefix, p, tc.prefix, tc.path)
		}
	}
}
