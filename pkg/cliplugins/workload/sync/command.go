package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
	tmcclient "github.com/tmc-dev/tmc/sdk/client/clientset/versioned"
)

// Defaults of the flags. QPS, burst and the clean delay are the workload-syncer's own
// defaults (cmd/workload-syncer/options), so that the Deployment spells out what the
// syncer would do anyway.
const (
	DefaultReplicas                              = 1
	DefaultUpstreamNamespace                     = "default"
	DefaultQPS                           float32 = 50
	DefaultBurst                                 = 100
	DefaultDownstreamNamespaceCleanDelay         = 30 * time.Second
	// DefaultTokenLifetime is the lifetime asked for the syncer's upstream token. The
	// API server may shorten it (--service-account-max-token-expiration). It stays one
	// year: nothing rotates the token automatically, and an expired token stops the
	// heartbeat, after which the tmc-controller moves the target's namespaces elsewhere
	// (--unhealthy-grace-period). Operators who rotate on a schedule should lower it.
	DefaultTokenLifetime = 365 * 24 * time.Hour
	// MinTokenLifetime is the shortest lifetime the TokenRequest API accepts.
	MinTokenLifetime = 10 * time.Minute
)

const longHelp = `Register a physical cluster with TMC.

In the current workspace of the kubeconfig (the location workspace: its server URL ends in
/clusters/<path>, or a plain Kubernetes hub), create or update the SyncTarget <name> and a
ServiceAccount tmc-syncer-<name> (in --upstream-namespace) whose RBAC allows it to read that
one SyncTarget, to sync it (the virtual-workspace server's verb) and to update its status,
nothing else. Then request a token for the ServiceAccount (TokenRequest API,
--token-lifetime, one year by default) and write the manifest to apply to the physical
cluster, to --output-file or stdout:

  - the syncer's Namespace and ServiceAccount;
  - a ClusterRole and binding: namespaces (get, list, watch, create, patch, delete), nodes (read,
    for capacity) and the synced resource types (get, list, watch, create, update, patch,
    delete), plus a Role for the leader-election Lease in its namespace;
  - a ValidatingAdmissionPolicy and binding that confine the syncer's ServiceAccount to the
    namespaces labelled internal.workload.kcp.io/cluster=<SyncTarget key>: whatever its
    RBAC allows, it cannot write anywhere else, and may only create and delete namespaces
    carrying that label;
  - a Secret with the upstream kubeconfig (key "kubeconfig", reading its token from key
    "token") and the syncer's Deployment.

On kcp the syncer reaches every workload workspace placed on the SyncTarget through the
virtual-workspace server (the SyncTarget's status.virtualWorkspaces): its ServiceAccount
holds the verb sync on the SyncTarget and needs nothing in the workload workspaces. For a
kcp without the virtual-workspace server, --direct-workspace-access runs the syncer in direct
mode, reaching each workload workspace with its credential: those workspaces must grant it the
synced types, and the manifest starts with a comment holding the ClusterRole and
ClusterRoleBinding to create in each of them. A plain hub is its own only workload
workspace and always gets that comment.

The syncer's kubeconfig uses the TLS settings of the current connection, with the
certificate authority embedded. If the current kubeconfig skips TLS verification
(insecure-skip-tls-verify), the command refuses unless --syncer-insecure-skip-tls-verify is
given: a syncer that does not verify the control plane hands its token to whoever answers.

Running the command again updates what changed and prints the same manifest, apart from a
new token. The token expires (the time is printed): run the command again and apply its
output before then. The syncer picks up the new token without a restart.`

const example = `  # Register the cluster "east", writing its manifest to east.yaml
  kubectl tmc workload sync east --syncer-image ghcr.io/tmc-dev/workload-syncer:v0.1.0 -o east.yaml
  kubectl --kubeconfig east.kubeconfig apply -f east.yaml

  # Sync only Deployments and ConfigMaps, with two replicas (leader election)
  kubectl tmc workload sync east --syncer-image IMG --resources deployments.apps,configmaps --replicas 2`

// Options are the flags of `workload sync`.
type Options struct {
	SyncTargetName string

	SyncerImage string
	// Resources replace the SyncTarget's spec.resources and are passed to the syncer; empty
	// leaves spec.resources as they are (empty meaning the default set).
	Resources  []string
	Labels     []string
	OutputFile string
	Replicas   int32
	// Namespace of the syncer on the physical cluster; empty means "tmc-syncer-<name>".
	Namespace string
	// UpstreamNamespace holds the syncer's ServiceAccount in the location workspace.
	UpstreamNamespace             string
	QPS                           float32
	Burst                         int
	DownstreamNamespaceCleanDelay time.Duration
	// TokenLifetime is the requested lifetime of the syncer's upstream token.
	TokenLifetime time.Duration
	// SyncerInsecureSkipTLSVerify allows writing insecure-skip-tls-verify into the
	// syncer's kubeconfig when the current connection skips TLS verification.
	SyncerInsecureSkipTLSVerify bool
	// DirectWorkspaceAccess prints, on kcp, the RBAC to create in every workload workspace,
	// for a syncer that reads them directly (no virtual-workspace server).
	DirectWorkspaceAccess bool

	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams

	// Injected for tests; nil means the real clients of configFlags.
	restConfig  func() (*rest.Config, error)
	newKube     func(*rest.Config) (kubernetes.Interface, error)
	newTMC      func(*rest.Config) (tmcclient.Interface, error)
	writeOutput func(path string, data []byte) error
}

// NewOptions returns the options with their defaults.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	flags := genericclioptions.NewConfigFlags(false)
	// -n/--namespace is the syncer's namespace on the physical cluster, not a namespace of
	// the upstream.
	flags.Namespace = nil
	return &Options{
		Replicas:                      DefaultReplicas,
		UpstreamNamespace:             DefaultUpstreamNamespace,
		QPS:                           DefaultQPS,
		Burst:                         DefaultBurst,
		DownstreamNamespaceCleanDelay: DefaultDownstreamNamespaceCleanDelay,
		TokenLifetime:                 DefaultTokenLifetime,
		configFlags:                   flags,
		streams:                       streams,
	}
}

// NewCommand returns `sync <name>`.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newCommand(NewOptions(streams))
}

func newCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:          "sync <name> --syncer-image IMAGE [-o FILE]",
		Short:        "Register a physical cluster: create its SyncTarget and write the syncer's manifest",
		Long:         longHelp,
		Example:      example,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.SyncTargetName = args[0]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// AddFlags binds the options and the standard kubeconfig flags to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.configFlags.AddFlags(fs)
	fs.StringVar(&o.SyncerImage, "syncer-image", o.SyncerImage, "Image of the workload-syncer. Required.")
	fs.StringSliceVar(&o.Resources, "resources", o.Resources,
		"Resource types to sync, as resource[.group] (e.g. deployments.apps,configmaps). Replaces the SyncTarget's spec.resources and limits the syncer to them. Empty leaves spec.resources unchanged (empty there means the default set).")
	fs.StringSliceVar(&o.Labels, "labels", o.Labels, "Labels to set on the SyncTarget, as key=value (comma-separated or repeated); Locations select SyncTargets by label.")
	fs.StringVarP(&o.OutputFile, "output-file", "o", o.OutputFile, `File to write the physical cluster's manifest to; empty or "-" means stdout. The file holds a token: it is written with mode 0600.`)
	fs.Int32Var(&o.Replicas, "replicas", o.Replicas, "Replicas of the syncer; more than one turns on leader election.")
	fs.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, `Namespace of the syncer on the physical cluster. Defaults to "tmc-syncer-<name>".`)
	fs.StringVar(&o.UpstreamNamespace, "upstream-namespace", o.UpstreamNamespace, "Namespace of the location workspace holding the syncer's ServiceAccount; created if missing.")
	fs.Float32Var(&o.QPS, "qps", o.QPS, "Queries per second the syncer may send to each of the upstream and the physical cluster; negative disables client-side rate limiting.")
	fs.IntVar(&o.Burst, "burst", o.Burst, "Burst of queries the syncer may send to each of the upstream and the physical cluster.")
	fs.DurationVar(&o.DownstreamNamespaceCleanDelay, "downstream-namespace-clean-delay", o.DownstreamNamespaceCleanDelay,
		"How long the syncer keeps an empty downstream namespace whose upstream namespace is gone.")
	fs.DurationVar(&o.TokenLifetime, "token-lifetime", o.TokenLifetime,
		"Lifetime to request for the syncer's upstream token (at least 10m; the API server may shorten it). Before it ends, run this command again and apply its output: the syncer reads the new token without a restart.")
	fs.DurationVar(&o.TokenLifetime, "token-expiration", o.TokenLifetime, "Lifetime to request for the syncer's upstream token.")
	_ = fs.MarkDeprecated("token-expiration", "use --token-lifetime")
	fs.BoolVar(&o.SyncerInsecureSkipTLSVerify, "syncer-insecure-skip-tls-verify", o.SyncerInsecureSkipTLSVerify,
		"Allow the syncer's kubeconfig to skip TLS verification of the control plane when the current kubeconfig does (insecure-skip-tls-verify). Without it the command refuses such a kubeconfig.")
	fs.BoolVar(&o.DirectWorkspaceAccess, "direct-workspace-access", o.DirectWorkspaceAccess,
		"On kcp, run the syncer in direct mode (--upstream-mode=direct: each workload workspace reached with its own RBAC, not through the virtual-workspace server) and print in the manifest's header the RBAC to create in every workload workspace: for a kcp without the virtual-workspace server. A plain hub always gets the RBAC.")
}

// Validate reports every problem of the options at once.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if msgs := validateSyncTargetName(o.SyncTargetName); len(msgs) > 0 {
		add("SyncTarget name %q is not valid: %s", o.SyncTargetName, strings.Join(msgs, "; "))
	}
	if o.SyncerImage == "" {
		add("--syncer-image is required")
	}
	if _, err := parseResources(o.Resources); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseLabels(o.Labels); err != nil {
		errs = append(errs, err)
	}
	if o.Replicas < 0 {
		add("--replicas must not be negative, got %d", o.Replicas)
	}
	if o.Namespace != "" {
		if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
			add("--namespace %q is not a valid namespace name: %s", o.Namespace, strings.Join(msgs, "; "))
		}
	}
	if msgs := validation.IsDNS1123Label(o.UpstreamNamespace); len(msgs) > 0 {
		add("--upstream-namespace %q is not a valid namespace name: %s", o.UpstreamNamespace, strings.Join(msgs, "; "))
	}
	// The same rules as the syncer's own flags, so that the Deployment does not crash-loop.
	switch {
	case math.IsNaN(float64(o.QPS)):
		add("--qps must be a number")
	case o.QPS == 0:
		add("--qps must not be 0: use a positive value, or a negative one to disable client-side rate limiting")
	case o.QPS > 0 && o.Burst < 1:
		add("--burst must be at least 1 when --qps is positive, got %d", o.Burst)
	}
	if o.DownstreamNamespaceCleanDelay < 0 {
		add("--downstream-namespace-clean-delay must not be negative, got %s", o.DownstreamNamespaceCleanDelay)
	}
	// The TokenRequest API refuses less than 10 minutes.
	if o.TokenLifetime < MinTokenLifetime {
		add("--token-lifetime must be at least %s, got %s", MinTokenLifetime, o.TokenLifetime)
	}
	return errors.Join(errs...)
}

// parseResources parses --resources, dropping duplicates and keeping the order.
func parseResources(values []string) ([]workloadv1alpha1.ResourceToSync, error) {
	var (
		out  []workloadv1alpha1.ResourceToSync
		errs []error
		seen = map[workloadv1alpha1.ResourceToSync]bool{}
	)
	for _, v := range values {
		r, err := workloadv1alpha1.ParseResourceToSync(v)
		if err == nil {
			if msgs := validation.IsDNS1123Label(r.Resource); len(msgs) > 0 {
				err = fmt.Errorf("resource name %q is not valid: %s", r.Resource, strings.Join(msgs, "; "))
			} else if r.Group != "" {
				if msgs := validation.IsDNS1123Subdomain(r.Group); len(msgs) > 0 {
					err = fmt.Errorf("group %q is not valid: %s", r.Group, strings.Join(msgs, "; "))
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--resources %q: %w", v, err))
			continue
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// parseLabels parses --labels key=value pairs.
func parseLabels(values []string) (map[string]string, error) {
	labels := map[string]string{}
	var errs []error
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("--labels %q: want key=value", kv))
			continue
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--labels %q: invalid key: %s", kv, strings.Join(msgs, "; ")))
			continue
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--labels %q: invalid value: %s", kv, strings.Join(msgs, "; ")))
			continue
		}
		if k == workloadv1alpha1.InternalSyncTargetKeyLabel {
			errs = append(errs, fmt.Errorf("--labels %q: %s is set by TMC", kv, k))
			continue
		}
		labels[k] = v
	}
	return labels, errors.Join(errs...)
}

// Run registers the SyncTarget upstream and writes the physical cluster's manifest.
func (o *Options) Run(ctx context.Context) error {
	cfg, err := o.loadRESTConfig()
	if err != nil {
		return err
	}
	if err := o.checkTLS(cfg); err != nil {
		return err
	}
	root, workspace, err := splitUpstreamURL(cfg.Host)
	if err != nil {
		return fmt.Errorf("failed to find the current workspace: %w", err)
	}
	upstreamKube, upstreamTMC, err := o.clients(cfg)
	if err != nil {
		return err
	}
	resources, _ := parseResources(o.Resources) // validated
	labels, _ := parseLabels(o.Labels)          // validated

	mopts := ManifestOptions{
		SyncTargetName:                o.SyncTargetName,
		SyncTargetWorkspace:           workspace,
		Namespace:                     o.Namespace,
		Image:                         o.SyncerImage,
		Replicas:                      o.Replicas,
		PinResources:                  len(resources) > 0,
		QPS:                           o.QPS,
		Burst:                         o.Burst,
		DownstreamNamespaceCleanDelay: o.DownstreamNamespaceCleanDelay,
		DirectWorkspaceAccess:         o.DirectWorkspaceAccess,
	}
	up := &upstream{upstreamKube: upstreamKube, upstreamTMC: upstreamTMC, out: o.streams.ErrOut}
	result, err := up.ensure(ctx, upstreamRequest{
		syncTargetName:    o.SyncTargetName,
		locationWorkspace: locationWorkspaceName(workspace),
		labels:            labels,
		resources:         resources,
		namespace:         o.UpstreamNamespace,
		tokenExpiration:   o.TokenLifetime,
	})
	if err != nil {
		return err
	}

	mopts.SyncTargetUID = string(result.syncTarget.UID)
	mopts.SyncTargetCluster = workloadv1alpha1.SyncTargetCluster(result.syncTarget, locationWorkspaceName(workspace))
	// What the syncer will be asked to sync: the SyncTarget's resources as they are now.
	mopts.Resources = result.syncTarget.Spec.Resources
	mopts.UpstreamToken = result.token
	if mopts.UpstreamKubeconfig, err = upstreamKubeconfig(cfg, root, secretMountPath+"/"+tokenKey); err != nil {
		return err
	}
	objs, err := DownstreamManifests(mopts)
	if err != nil {
		return err
	}
	body, err := Render(objs)
	if err != nil {
		return err
	}
	header, err := manifestHeader(mopts, result, o.DirectWorkspaceAccess)
	if err != nil {
		return err
	}
	if err := o.write(append(header, body...)); err != nil {
		return err
	}
	o.printNextSteps(result, printsWorkspaceRBAC(mopts, o.DirectWorkspaceAccess))
	return nil
}

// locationWorkspaceName is the location workspace's path, or hubWorkspace on a plain hub.
func locationWorkspaceName(workspace logicalcluster.Path) string {
	if workspace.Empty() {
		return hubWorkspace
	}
	return workspace.String()
}

// checkTLS refuses a current connection that skips TLS verification, which the syncer's
// kubeconfig would copy, unless --syncer-insecure-skip-tls-verify allows it; then it warns.
func (o *Options) checkTLS(cfg *rest.Config) error {
	if !cfg.Insecure {
		return nil
	}
	if !o.SyncerInsecureSkipTLSVerify {
		return fmt.Errorf("the kubeconfig skips TLS verification of %s (insecure-skip-tls-verify), and the syncer's kubeconfig would too: "+
			"anyone between the physical cluster and the control plane could take the syncer's token. "+
			"Give the kubeconfig the server's certificate authority (certificate-authority or certificate-authority-data), "+
			"or pass --syncer-insecure-skip-tls-verify to accept the risk", cfg.Host)
	}
	_, _ = fmt.Fprintf(o.streams.ErrOut, "Warning: the syncer's kubeconfig skips TLS verification of %s (--syncer-insecure-skip-tls-verify): "+
		"its upstream token is exposed to anyone who can intercept the connection. Use a certificate authority for real clusters.\n", cfg.Host)
	return nil
}

func (o *Options) loadRESTConfig() (*rest.Config, error) {
	load := o.restConfig
	if load == nil {
		load = o.configFlags.ToRESTConfig
	}
	cfg, err := load()
	if err != nil {
		return nil, fmt.Errorf("failed to load the kubeconfig of the location workspace: %w", err)
	}
	return cfg, nil
}

func (o *Options) clients(cfg *rest.Config) (kubernetes.Interface, tmcclient.Interface, error) {
	newKube := o.newKube
	if newKube == nil {
		newKube = func(c *rest.Config) (kubernetes.Interface, error) { return kubernetes.NewForConfig(c) }
	}
	newTMC := o.newTMC
	if newTMC == nil {
		newTMC = func(c *rest.Config) (tmcclient.Interface, error) { return tmcclient.NewForConfig(c) }
	}
	upstreamKube, err := newKube(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create a client of the location workspace: %w", err)
	}
	upstreamTMC, err := newTMC(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create a TMC client of the location workspace: %w", err)
	}
	return upstreamKube, upstreamTMC, nil
}

func (o *Options) toStdout() bool { return o.OutputFile == "" || o.OutputFile == "-" }

func (o *Options) write(data []byte) error {
	if o.toStdout() {
		_, err := o.streams.Out.Write(data)
		return err
	}
	write := o.writeOutput
	if write == nil {
		write = func(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }
	}
	if err := write(o.OutputFile, data); err != nil {
		return fmt.Errorf("failed to write the manifest: %w", err)
	}
	return nil
}

func (o *Options) printNextSteps(result *upstreamResult, workspaceRBAC bool) {
	var b strings.Builder
	if !result.tokenExpiration.IsZero() {
		fmt.Fprintf(&b, "\nThe syncer's upstream token expires at %s: run this command again and apply its output before then.\n",
			result.tokenExpiration.UTC().Format(time.RFC3339))
	}
	file := o.OutputFile
	if o.toStdout() {
		file = "<manifest>"
	} else {
		fmt.Fprintf(&b, "Wrote the manifest of the physical cluster to %s.\n", file)
	}
	fmt.Fprintf(&b, "Apply it to the physical cluster:\n\n  kubectl --kubeconfig <physical-cluster-kubeconfig> apply -f %s\n\n", file)
	if workspaceRBAC {
		b.WriteString("Then grant the syncer the synced types in every workload workspace (the ClusterRole and binding are in the comment at the top of the manifest):\n\n")
		fmt.Fprintf(&b, "  sed -n 's/^%s//p' %s | kubectl --kubeconfig <workload-workspace-kubeconfig> apply -f -\n", commentYAMLPrefix, file)
	} else {
		b.WriteString("The syncer reaches the workload workspaces through the virtual-workspace server: nothing to grant in them.\n")
	}
	// Best effort: the manifest is already written.
	_, _ = io.WriteString(o.streams.ErrOut, b.String())
}
