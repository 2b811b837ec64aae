package options

import (
	"fmt"
	"net/url"

	"github.com/spf13/pflag"
)

// addVirtualWorkspaceFlags binds the virtual-workspace flags to fs.
func (o *Options) addVirtualWorkspaceFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.VirtualWorkspaceURLs, "virtual-workspace-url", o.VirtualWorkspaceURLs,
		"Base URL (https) of the virtual-workspace server of each kcp shard; repeatable or comma-separated. "+
			"Every SyncTarget's status.virtualWorkspaces gets one syncer view per URL, in this order; without it the field is removed "+
			"and syncers reach each workload workspace directly. Not with --hub.")
}

// validateVirtualWorkspaceURLs reports the problems of --virtual-workspace-url.
func (o *Options) validateVirtualWorkspaceURLs() []error {
	var errs []error
	if o.Hub && len(o.VirtualWorkspaceURLs) > 0 {
		errs = append(errs, fmt.Errorf("--hub excludes --virtual-workspace-url: a plain hub has no virtual-workspace server"))
	}
	seen := map[string]bool{}
	for _, raw := range o.VirtualWorkspaceURLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("--virtual-workspace-url: %w", err))
		case u.Scheme != "https" || u.Host == "":
			errs = append(errs, fmt.Errorf("--virtual-workspace-url %q must be an https URL with a host", raw))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, fmt.Errorf("--virtual-workspace-url %q must not have user info, a query or a fragment", raw))
		case seen[raw]:
			errs = append(errs, fmt.Errorf("--virtual-workspace-url %q is given twice", raw))
		}
		seen[raw] = true
	}
	return errs
}
