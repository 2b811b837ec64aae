package options

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tmc-dev/tmc/pkg/cliutil"
	"github.com/tmc-dev/tmc/pkg/reconciler/workload/syncer"
	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
	workloadv1alpha1 "github.com/tmc-dev/tmc/sdk/apis/workload/v1alpha1"
)

// Defaults of the flags.
const (
	DefaultWorkers                               = 4
	DefaultQPS                           float32 = 50
	DefaultBurst                                 = 100
	DefaultHeartbeatInterval                     = 20 * time.Second
	DefaultDownstreamNamespaceCleanDelay         = 30 * time.Second
	DefaultResyncPeriod                          = 10 * time.Hour
	DefaultDiscoveryInterval                     = 30 * time.Second
	DefaultMetricsBindAddress                    = ":8080"
	DefaultHealthProbeBindAddress                = ":8081"
	DefaultLeaseDuration                         = cliutil.DefaultLeaseDuration
	DefaultRenewDeadline                         = cliutil.DefaultRenewDeadline
	DefaultRetryPeriod                           = cliutil.DefaultRetryPeriod
	DefaultLeaderElectionIDPrefix                = "workload-syncer-"
	DefaultDeletionBudgetObjects                 = syncer.DefaultDeletionBudgetObjects
	DefaultDeletionBudgetPercent                 = syncer.DefaultDeletionBudgetPercent
	DefaultDeletionBudgetWindow                  = syncer.DefaultDeletionBudgetWindow
)

const (
	disabledBindAddress  = "0"
	minHeartbeatInterval = time.Second

	// The downward API variables and the file the pod's identity is read from.
	podNameEnv                         = "POD_NAME"
	podNamespaceEnv                    = "POD_NAMESPACE"
	defaultServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// Options are the workload-syncer's flags. Build them with NewOptions, bind them with
// AddFlags, then call Validate and Config.
type Options struct {
	// UpstreamKubeconfig reaches the control plane (kcp front proxy or a plain Kubernetes
	// hub); required.
	UpstreamKubeconfig string
	// UpstreamContext overrides the current context of UpstreamKubeconfig.
	UpstreamContext string

	// SyncTargetWorkspace is the location workspace holding the SyncTarget. Empty means the
	// upstream is a plain Kubernetes hub, unless the upstream server URL ends in
	// /clusters/<path>, which then provides it.
	SyncTargetWorkspace string
	// SyncTargetName is the SyncTarget this syncer serves; required.
	SyncTargetName string
	// SyncTargetUID, when set, must match the SyncTarget's UID.
	SyncTargetUID string

	// AdmissionPolicyName names the ValidatingAdmissionPolicy (and its binding) that
	// confine the syncer on the physical cluster, checked for the SyncerConfined
	// condition; empty means the name `kubectl tmc workload sync` gives them.
	AdmissionPolicyName string

	// DownstreamKubeconfig reaches the physical cluster; empty means the in-cluster config.
	DownstreamKubeconfig string
	// DownstreamContext overrides the current context of DownstreamKubeconfig.
	DownstreamContext string

	// Resources overrides SyncTarget.spec.resources ("deployments.apps", "configmaps").
	Resources []string
	// Workspaces is a static list of workload workspaces, instead of following
	// SyncTarget.status.workspaces.
	Workspaces []string
	// UpstreamMode is auto, direct or virtual-workspace.
	UpstreamMode string
	// Tunnel holds the reverse tunnel to each syncer view, for pod log, exec, attach and
	// port-forward through the control plane.
	Tunnel bool

	// Workers is the number of workers per controller.
	Workers int
	// QPS and Burst limit the clients of both sides; a negative QPS disables client-side
	// rate limiting.
	QPS   float32
	Burst int

	HeartbeatInterval             time.Duration
	DownstreamNamespaceCleanDelay time.Duration
	// ResyncPeriod of the informers; 0 disables resync.
	ResyncPeriod time.Duration
	// DiscoveryInterval is how often downstream resource types and permissions are checked.
	DiscoveryInterval time.Duration

	// DeletionBudgetObjects, DeletionBudgetPercent and DeletionBudgetWindow configure the
	// mass-deletion breaker: more than max(objects, percent % of the synced objects) deleted
	// within the window pauses the deletions the syncer decides on its own. A negative
	// DeletionBudgetObjects disables the budget.
	DeletionBudgetObjects int
	DeletionBudgetPercent int
	DeletionBudgetWindow  time.Duration

	// MetricsBindAddress and HealthProbeBindAddress are host:port, or "0" to disable.
	MetricsBindAddress     string
	HealthProbeBindAddress string

	// LeaderElectionFlags make replicas elect a leader through a Lease in the physical
	// cluster. An empty LeaderElectionNamespace means the pod's namespace, an empty
	// LeaderElectionID "workload-syncer-<sync-target-name>".
	cliutil.LeaderElectionFlags

	// PodName is reported in SyncTarget.status.syncer. It has no flag: empty means
	// "<POD_NAMESPACE>/<POD_NAME>" from the downward API, else the host name.
	PodName string

	// serviceAccountNamespaceFile is where the pod's namespace is read from when
	// POD_NAMESPACE is not set; tests point it elsewhere.
	serviceAccountNamespaceFile string
}

// NewOptions returns the options with their defaults.
func NewOptions() *Options {
	return &Options{
		UpstreamMode:                  string(syncer.UpstreamModeAuto),
		Tunnel:                        true,
		Workers:                       DefaultWorkers,
		QPS:                           DefaultQPS,
		Burst:                         DefaultBurst,
		HeartbeatInterval:             DefaultHeartbeatInterval,
		DownstreamNamespaceCleanDelay: DefaultDownstreamNamespaceCleanDelay,
		ResyncPeriod:                  DefaultResyncPeriod,
		DiscoveryInterval:             DefaultDiscoveryInterval,
		DeletionBudgetObjects:         DefaultDeletionBudgetObjects,
		DeletionBudgetPercent:         DefaultDeletionBudgetPercent,
		DeletionBudgetWindow:          DefaultDeletionBudgetWindow,
		MetricsBindAddress:            DefaultMetricsBindAddress,
		HealthProbeBindAddress:        DefaultHealthProbeBindAddress,
		LeaderElectionFlags:           cliutil.NewLeaderElectionFlags("", ""),
		serviceAccountNamespaceFile:   defaultServiceAccountNamespaceFile,
	}
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.UpstreamKubeconfig, "upstream-kubeconfig", o.UpstreamKubeconfig,
		"Kubeconfig of the control plane (kcp front proxy or plain Kubernetes hub). Required. A server URL ending in /clusters/<path> is reduced to its root; <path> then defaults --sync-target-workspace.")
	fs.StringVar(&o.UpstreamContext, "upstream-context", o.UpstreamContext,
		"Context of --upstream-kubeconfig to use instead of its current context.")
	fs.StringVar(&o.SyncTargetWorkspace, "sync-target-workspace", o.SyncTargetWorkspace,
		"Location workspace holding the SyncTarget, e.g. root:org:locations. Empty means the upstream is a plain Kubernetes hub.")
	fs.StringVar(&o.SyncTargetName, "sync-target-name", o.SyncTargetName,
		"Name of the SyncTarget this syncer serves. Required.")
	fs.StringVar(&o.SyncTargetUID, "sync-target-uid", o.SyncTargetUID,
		"UID the SyncTarget must have; guards against a SyncTarget deleted and re-created under the same name.")
	fs.StringVar(&o.AdmissionPolicyName, "admission-policy-name", o.AdmissionPolicyName,
		`Name of the ValidatingAdmissionPolicy and of its binding that confine the syncer on the physical cluster; the syncer checks them at start and with every heartbeat and reports the SyncerConfined condition. Empty means the name "kubectl tmc workload sync" gives them ("tmc-syncer-<sync-target-name>-<hash>").`)
	fs.StringVar(&o.DownstreamKubeconfig, "downstream-kubeconfig", o.DownstreamKubeconfig,
		"Kubeconfig of the physical cluster. Empty means the in-cluster config of the syncer's pod.")
	fs.StringVar(&o.DownstreamContext, "downstream-context", o.DownstreamContext,
		"Context of --downstream-kubeconfig to use instead of its current context.")
	fs.StringSliceVar(&o.Resources, "resources", o.Resources,
		"Resource types to sync, overriding the SyncTarget's spec.resources, as resource[.group] (e.g. deployments.apps,configmaps). Comma-separated or repeated.")
	fs.StringSliceVar(&o.Workspaces, "workspaces", o.Workspaces,
		"Workload workspaces to sync from (e.g. root:org:a,root:org:b), instead of following the SyncTarget's status.workspaces. Comma-separated or repeated.")
	fs.StringVar(&o.UpstreamMode, "upstream-mode", o.UpstreamMode,
		"How to reach the workload workspaces: auto (through the virtual-workspace server when the SyncTarget's status.virtualWorkspaces lists one when the syncer starts, else directly), direct (each workspace with this credential's RBAC there), or virtual-workspace (wait for status.virtualWorkspaces).")
	fs.BoolVar(&o.Tunnel, "tunnel", o.Tunnel,
		"Hold a reverse tunnel to each syncer view in SyncTarget.status.virtualWorkspaces, through which the control plane reaches the log, exec, attach and port-forward of upsynced pods (the physical cluster needs no inbound access).")
	fs.IntVar(&o.Workers, "workers", o.Workers, "Number of workers per controller.")
	fs.Float32Var(&o.QPS, "qps", o.QPS,
		"Queries per second allowed to each of the upstream and downstream API servers. A negative value disables client-side rate limiting.")
	fs.IntVar(&o.Burst, "burst", o.Burst, "Burst of queries allowed to each of the upstream and downstream API servers.")
	fs.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", o.HeartbeatInterval,
		"How often the syncer reports on its SyncTarget that it is alive.")
	fs.DurationVar(&o.DownstreamNamespaceCleanDelay, "downstream-namespace-clean-delay", o.DownstreamNamespaceCleanDelay,
		"How long an empty downstream namespace whose upstream namespace is gone is kept before it is deleted.")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod, "Resync period of the informers; 0 disables resync.")
	fs.DurationVar(&o.DiscoveryInterval, "discovery-interval", o.DiscoveryInterval, "How often the syncer re-checks which resource types the physical cluster serves and which it may write (besides every SyncTarget change).")
	fs.IntVar(&o.DeletionBudgetObjects, "deletion-budget-objects", o.DeletionBudgetObjects,
		"Mass-deletion breaker: the downstream deletions the syncer decides on its own (object gone upstream, unscheduled, namespace cleanup; never those a user asked for) pause when more than the larger of this many objects and --deletion-budget-percent of the synced objects are deleted within --deletion-budget-window, until an operator runs `kubectl tmc workload resume-deletions`. 0 (with --deletion-budget-percent=0) pauses every such deletion; a negative value disables the budget. Copies whose upstream object vanished without a deletion always wait for an operator.")
	fs.IntVar(&o.DeletionBudgetPercent, "deletion-budget-percent", o.DeletionBudgetPercent,
		"Mass-deletion breaker: the budget grows to this percentage (0-100) of the target's synced objects on large targets.")
	fs.DurationVar(&o.DeletionBudgetWindow, "deletion-budget-window", o.DeletionBudgetWindow,
		"Mass-deletion breaker: the sliding window the deletions are counted in.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress,
		`Address (host:port) serving /metrics; "0" disables it.`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress,
		`Address (host:port) serving /healthz, /livez and /readyz; "0" disables it.`)
	o.LeaderElectionFlags.AddFlags(fs, cliutil.LeaderElectionUsage{
		Lease:     "in the physical cluster",
		Namespace: "Defaults to the pod's namespace (POD_NAMESPACE or the service-account namespace).",
		ID:        `Defaults to "` + DefaultLeaderElectionIDPrefix + `<sync-target-name>".`,
	})
}

// Validate reports every problem of the options at once, one line per problem, each naming
// its flag.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if o.UpstreamKubeconfig == "" {
		add("--upstream-kubeconfig is required")
	} else if err := checkFile(o.UpstreamKubeconfig); err != nil {
		add("--upstream-kubeconfig: %w", err)
	}
	if o.DownstreamKubeconfig == "" {
		if o.DownstreamContext != "" {
			add("--downstream-context requires --downstream-kubeconfig (the in-cluster config has no contexts)")
		}
	} else if err := checkFile(o.DownstreamKubeconfig); err != nil {
		add("--downstream-kubeconfig: %w", err)
	}

	if o.SyncTargetWorkspace != "" {
		if _, err := logicalcluster.ParsePath(o.SyncTargetWorkspace); err != nil {
			add("--sync-target-workspace: %q is not a valid workspace path: %w", o.SyncTargetWorkspace, err)
		}
	}
	if o.SyncTargetName == "" {
		add("--sync-target-name is required")
	} else if msgs := validation.IsDNS1123Subdomain(o.SyncTargetName); len(msgs) > 0 {
		add("--sync-target-name: %q is not a valid SyncTarget name: %s", o.SyncTargetName, strings.Join(msgs, "; "))
	}
	if o.SyncTargetUID != "" && strings.IndexFunc(o.SyncTargetUID, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) >= 0 {
		add("--sync-target-uid: %q is not a valid UID: it must not contain spaces or control characters", o.SyncTargetUID)
	}

	if o.AdmissionPolicyName != "" {
		if msgs := validation.IsDNS1123Subdomain(o.AdmissionPolicyName); len(msgs) > 0 {
			add("--admission-policy-name: %q is not a valid object name: %s", o.AdmissionPolicyName, strings.Join(msgs, "; "))
		}
	}

	_, resourceErrs := parseResources(o.Resources)
	errs = append(errs, resourceErrs...)
	_, workspaceErrs := parseWorkspaces(o.Workspaces)
	errs = append(errs, workspaceErrs...)

	switch syncer.UpstreamMode(o.UpstreamMode) {
	case "", syncer.UpstreamModeAuto, syncer.UpstreamModeDirect, syncer.UpstreamModeVirtualWorkspace:
	default:
		add("--upstream-mode must be auto, direct or virtual-workspace, got %q", o.UpstreamMode)
	}
	if o.Workers < 1 {
		add("--workers must be at least 1, got %d", o.Workers)
	}
	switch {
	case math.IsNaN(float64(o.QPS)):
		add("--qps must be a number")
	case o.QPS == 0:
		add("--qps must not be 0: use a positive value, or a negative one to disable client-side rate limiting")
	case o.QPS > 0 && o.Burst < 1:
		add("--burst must be at least 1 when --qps is positive, got %d", o.Burst)
	}
	if o.HeartbeatInterval < minHeartbeatInterval {
		add("--heartbeat-interval must be at least %s, got %s", minHeartbeatInterval, o.HeartbeatInterval)
	}
	if o.DownstreamNamespaceCleanDelay < 0 {
		add("--downstream-namespace-clean-delay must not be negative, got %s", o.DownstreamNamespaceCleanDelay)
	}
	if o.DiscoveryInterval < time.Second {
		add("--discovery-interval must be at least 1s, got %s", o.DiscoveryInterval)
	}
	if o.DeletionBudgetPercent < 0 || o.DeletionBudgetPercent > 100 {
		add("--deletion-budget-percent must be between 0 and 100, got %d", o.DeletionBudgetPercent)
	}
	if o.DeletionBudgetWindow < time.Second {
		add("--deletion-budget-window must be at least 1s, got %s", o.DeletionBudgetWindow)
	}
	if o.ResyncPeriod < 0 {
		add("--resync-period must not be negative (0 disables resync), got %s", o.ResyncPeriod)
	}

	metricsErr := validateBindAddress(o.MetricsBindAddress)
	if metricsErr != nil {
		add("--metrics-bind-address: %w", metricsErr)
	}
	healthErr := validateBindAddress(o.HealthProbeBindAddress)
	if healthErr != nil {
		add("--health-probe-bind-address: %w", healthErr)
	}
	if metricsErr == nil && healthErr == nil && o.MetricsBindAddress != disabledBindAddress &&
		o.MetricsBindAddress == o.HealthProbeBindAddress && !hasPortZero(o.MetricsBindAddress) {
		add("--metrics-bind-address and --health-probe-bind-address must differ, both are %q", o.MetricsBindAddress)
	}

	if o.LeaderElect {
		errs = append(errs, o.validateLeaderElection()...)
	}
	return errors.Join(errs...)
}

func (o *Options) validateLeaderElection() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if ns := o.leaderElectionNamespace(); ns == "" {
		add("--leader-election-namespace is required with --leader-elect outside a pod")
	} else if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		add("--leader-election-namespace: %q is not a valid namespace: %s", ns, strings.Join(msgs, "; "))
	}
	// Without a SyncTarget name the default ID is meaningless and already reported above.
	if o.LeaderElectionID != "" || o.SyncTargetName != "" {
		id := o.leaderElectionID()
		if msgs := validation.IsDNS1123Subdomain(id); len(msgs) > 0 {
			origin := ""
			if o.LeaderElectionID == "" {
				origin = " (defaulted from --sync-target-name)"
			}
			add("--leader-election-id: %q%s is not a valid Lease name: %s", id, origin, strings.Join(msgs, "; "))
		}
	}

	return append(errs, o.LeaderElectionFlags.Validate()...)
}

// checkFile reports whether path is an existing regular file (or something readable like
// one, e.g. a named pipe), with a message fit for a flag error.
func checkFile(path string) error {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("file %q does not exist", path)
	case err != nil:
		return fmt.Errorf("cannot read %q: %w", path, err)
	case info.IsDir():
		return fmt.Errorf("%q is a directory, not a kubeconfig file", path)
	}
	return nil
}

// validateBindAddress accepts "0" (disabled) or host:port with a numeric port.
func validateBindAddress(addr string) error {
	if addr == disabledBindAddress {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q must be %q to disable or host:port (e.g. :8080): %w", addr, disabledBindAddress, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > math.MaxUint16 {
		return fmt.Errorf("%q must be %q to disable or host:port with a port number between 0 and %d", addr, disabledBindAddress, math.MaxUint16)
	}
	return nil
}

// hasPortZero reports whether addr asks for a random port, which never conflicts.
func hasPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// parseResources parses --resources, dropping duplicates and keeping the order.
func parseResources(values []string) ([]workloadv1alpha1.ResourceToSync, []error) {
	var (
		resources []workloadv1alpha1.ResourceToSync
		errs      []error
		seen      = map[workloadv1alpha1.ResourceToSync]bool{}
	)
	for _, value := range values {
		r, err := workloadv1alpha1.ParseResourceToSync(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("--resources: %w", err))
			continue
		}
		if msgs := validation.IsDNS1123Label(r.Resource); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--resources: %q: resource name %q is not valid: %s", value, r.Resource, strings.Join(msgs, "; ")))
			continue
		}
		if r.Group != "" {
			if msgs := validation.IsDNS1123Subdomain(r.Group); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("--resources: %q: group %q is not valid: %s", value, r.Group, strings.Join(msgs, "; ")))
				continue
			}
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		resources = append(resources, r)
	}
	return resources, errs
}

// parseWorkspaces parses --workspaces, dropping duplicates and keeping the order.
func parseWorkspaces(values []string) ([]logicalcluster.Path, []error) {
	var (
		workspaces []logicalcluster.Path
		errs       []error
		seen       = map[logicalcluster.Path]bool{}
	)
	for _, value := range values {
		p, err := logicalcluster.ParsePath(strings.TrimSpace(value))
		if err != nil {
			errs = append(errs, fmt.Errorf("--workspaces: %q is not a valid workspace path: %w", value, err))
			continue
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		workspaces = append(workspaces, p)
	}
	return workspaces, errs
}
