package options

import (
	"slices"
	"strings"
	"testing"
)

func TestVirtualWorkspaceURLFlag(t *testing.T) {
	kc := writeKubeconfig(t, "https://127.0.0.1:6443")
	valid := []string{"--upstream-kubeconfig=" + kc, "--location-workspaces=root:org:loc", "--workspaces=root:org:a"}

	o := parse(t, append(valid, "--virtual-workspace-url=https://vw-1:6444,https://vw-2:6444", "--virtual-workspace-url=https://vw-3/base")...)
	if err := o.Validate(); err != nil {
		t.Fatalf("valid URLs rejected: %v", err)
	}
	if want := []string{"https://vw-1:6444", "https://vw-2:6444", "https://vw-3/base"}; !slices.Equal(o.VirtualWorkspaceURLs, want) {
		t.Errorf("VirtualWorkspaceURLs = %v, want %v (flag order, comma-separated and repeated)", o.VirtualWorkspaceURLs, want)
	}
	if o := parse(t, valid...); len(o.VirtualWorkspaceURLs) != 0 {
		t.Errorf("default VirtualWorkspaceURLs = %v, want none", o.VirtualWorkspaceURLs)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(valid, "--virtual-workspace-url=http://vw:6444"), "must be an https URL with a host"},
		{append(valid, "--virtual-workspace-url=vw:6444"), "must be an https URL with a host"},
		{append(valid, "--virtual-workspace-url=https://"), "must be an https URL with a host"},
		{append(valid, "--virtual-workspace-url=https://vw?x=1"), "must not have user info, a query or a fragment"},
		{append(valid, "--virtual-workspace-url=https://vw,https://vw"), "is given twice"},
		{[]string{"--upstream-kubeconfig=" + kc, "--hub", "--virtual-workspace-url=https://vw"}, "--hub excludes --virtual-workspace-url"},
	} {
		err := parse(t, tc.args...).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}
