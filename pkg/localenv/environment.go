package localenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// Options configures an environment.
type Options struct {
	// Workspaces are the logical-cluster paths to create, e.g. "root:org:locations".
	Workspaces []string
	// PhysicalClusters to create.
	PhysicalClusters []PhysicalClusterOptions
	// Users are extra token users valid in every workspace and cluster (RBAC is up to the
	// caller). The admin user always exists.
	Users []string
	// Dir holds data, logs and kubeconfigs; a new temporary directory when empty.
	Dir string
	// NoWorkspaceControllers skips the kube-controller-manager that otherwise runs for each
	// workspace the controllers kcp runs per logical cluster (namespace, garbage collector,
	// service account, service-account token, root-CA publisher) and the PVC/PV protection
	// controllers.
	NoWorkspaceControllers bool
	// WorkspaceAPIServerArgs are extra kube-apiserver flags for every workspace's
	// apiserver (replacements included), e.g. --watch-cache=false so that watches are
	// served from etcd and an etcd compaction (Etcd.Compact) expires them.
	WorkspaceAPIServerArgs []string
	// WorkspaceAPIServerEnv are extra environment variables ("NAME=value") of every
	// workspace's apiserver, e.g. GOMEMLIMIT to fit many workspaces on one machine.
	WorkspaceAPIServerEnv []string
	// Shards are more shards beyond the root one (which holds Workspaces), each with its
	// own etcd and its own front proxy serving its workspaces' /clusters/* (shards.go).
	Shards []ShardOptions
}

// Environment is a running set of servers: one etcd, one apiserver per workspace behind a
// front proxy, and physical clusters.
type Environment struct {
	Dir    string
	LogDir string
	PKI    *PKI
	Tokens *TokenFile
	Etcd   *Etcd
	// FrontProxy serves every workspace on one URL.
	FrontProxy *FrontProxy

	workspaces map[string]*Workspace
	clusters   map[string]*PhysicalCluster
	// shards are the root shard (Etcd, FrontProxy) and Options.Shards, by name.
	shards map[string]*Shard

	bins       *Binaries
	mu         sync.Mutex
	procs      []*Process
	closers    []func() error
	stopped    bool
	ownDir     bool
	startTaken time.Duration
	// replacements counts ReplaceWorkspace calls, naming the new apiservers.
	replacements int
	// workspaceAPIServerArgs is Options.WorkspaceAPIServerArgs.
	workspaceAPIServerArgs []string
	// workspaceAPIServerEnv is Options.WorkspaceAPIServerEnv.
	workspaceAPIServerEnv []string
	// workspaceRootCAFile is the CA bundle the workspaces publish as kube-root-ca.crt.
	workspaceRootCAFile string
	// noWorkspaceControllers is Options.NoWorkspaceControllers, for AddWorkspace.
	noWorkspaceControllers bool
}

// Workspace is one emulated kcp workspace: its own apiserver, served through the front proxy.
type Workspace struct {
	Path logicalcluster.Path
	// Name is the workspace's logical-cluster name, distinct from its path as on kcp: the
	// front proxy serves the workspace at /clusters/<name> too, and every object carries
	// kcp.io/cluster: <name>.
	Name string
	// Shard is the name of the shard storing the workspace (RootShard by default).
	Shard             string
	APIServer         *APIServer
	ControllerManager *Process
	env               *Environment
}

// Config returns a rest config for user to the workspace through the front proxy.
func (w *Workspace) Config(user string) *rest.Config { return w.env.FrontProxy.Config(w.Path, user) }

// AdminConfig returns an admin rest config to the workspace through the front proxy.
func (w *Workspace) AdminConfig() *rest.Config { return w.Config(AdminUser) }

// Start starts an environment. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Environment, err error) {
	began := time.Now()
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	env := &Environment{Dir: opts.Dir, bins: bins, workspaces: map[string]*Workspace{}, clusters: map[string]*PhysicalCluster{},
		workspaceAPIServerArgs: opts.WorkspaceAPIServerArgs, workspaceAPIServerEnv: opts.WorkspaceAPIServerEnv,
		noWorkspaceControllers: opts.NoWorkspaceControllers}
	if env.Dir == "" {
		if env.Dir, err = os.MkdirTemp("", "tmc-env-"); err != nil {
			return nil, fmt.Errorf("failed to create environment directory: %w", err)
		}
		env.ownDir = true
	}
	env.LogDir = filepath.Join(env.Dir, "logs")
	if err := os.MkdirAll(env.LogDir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create log directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = env.Stop()
		}
	}()
	if env.PKI, err = NewPKI(filepath.Join(env.Dir, "pki")); err != nil {
		return nil, err
	}
	if env.Tokens, err = NewTokenFile(filepath.Join(env.Dir, "pki"), opts.Users); err != nil {
		return nil, err
	}
	if env.workspaceRootCAFile, err = writeWorkspaceRootCA(env.PKI); err != nil {
		return nil, err
	}
	if env.Etcd, err = StartEtcd(ctx, bins, env.Dir, env.LogDir); err != nil {
		return nil, err
	}
	env.track(env.Etcd.Process)
	if env.FrontProxy, err = StartFrontProxy(env.PKI, env.Tokens, env.Etcd, env.LogDir); err != nil {
		return nil, err
	}
	env.closers = append(env.closers, env.FrontProxy.Close)
	placements, err := env.startShards(ctx, opts)
	if err != nil {
		return nil, err
	}

	// Start the apiservers in parallel: each takes a few seconds, mostly waiting.
	type result struct {
		ws  *Workspace
		pc  *PhysicalCluster
		err error
	}
	results := make(chan result, len(placements)+len(opts.PhysicalClusters))
	for _, placed := range placements {
		go func() {
			ws, err := env.startWorkspace(ctx, placed.path, placed.shard, !opts.NoWorkspaceControllers)
			results <- result{ws: ws, err: err}
		}()
	}
	for _, pco := range opts.PhysicalClusters {
		go func() {
			pc, err := startPhysicalCluster(ctx, env, pco)
			results <- result{pc: pc, err: err}
		}()
	}
	var errs []error
	for range len(placements) + len(opts.PhysicalClusters) {
		r := <-results
		switch {
		case r.err != nil:
			errs = append(errs, r.err)
		case r.ws != nil:
			env.workspaces[r.ws.Path.String()] = r.ws
		case r.pc != nil:
			env.clusters[r.pc.Name] = r.pc
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// A controller that rejects its flags exits at once; catch that here rather than as a
	// mysterious test failure later.
	for _, p := range env.Processes() {
		if !p.Running() {
			return nil, fmt.Errorf("%s exited during start-up (%w); it ended with:\n%s", p.Name, p.ExitError(), tailFile(p.LogPath, 5))
		}
	}
	env.startTaken = time.Since(began)
	return env, nil
}

func (env *Environment) startWorkspace(ctx context.Context, path string, shard *Shard, controllers bool) (*Workspace, error) {
	p, err := logicalcluster.ParsePath(path)
	if err != nil {
		return nil, err
	}
	name := "ws-" + strings.ReplaceAll(path, ":", "-")
	clusterName := logicalClusterName(p)
	etcdPrefix := "/workspaces/" + path
	as, cm, err := env.startWorkspaceServers(ctx, name, clusterName, shard.Etcd, etcdPrefix, controllers)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", path, err)
	}
	ws := &Workspace{Path: p, Name: clusterName, Shard: shard.Name, APIServer: as, ControllerManager: cm, env: env}
	if err := shard.FrontProxy.AddWorkspace(p, clusterName, as.URL, etcdPrefix); err != nil {
		return nil, err
	}
	if shard.FrontProxy != env.FrontProxy {
		// The environment's front proxy routes to every shard, as kcp's does.
		if err := env.FrontProxy.RouteWorkspace(p, clusterName, as.URL); err != nil {
			return nil, err
		}
	}
	return ws, nil
}

// startWorkspaceServers starts the apiserver of the logical cluster clusterName on
// etcdPrefix and, with controllers, its kube-controller-manager (workspaceControllers).
func (env *Environment) startWorkspaceServers(ctx context.Context, name, clusterName string, etcd *Etcd, etcdPrefix string, controllers bool) (*APIServer, *Process, error) {
	admission, err := writeLogicalClusterAdmission(filepath.Join(env.Dir, "admission", name), clusterName)
	if err != nil {
		return nil, nil, err
	}
	as, err := StartAPIServer(ctx, env.bins, env.PKI, env.Tokens, APIServerOptions{
		Name:       name,
		EtcdURL:    etcd.ClientURL,
		EtcdPrefix: etcdPrefix,
		ExtraArgs:  append([]string{admission}, env.workspaceAPIServerArgs...),
		Env:        env.workspaceAPIServerEnv,
	}, env.LogDir)
	if err != nil {
		return nil, nil, err
	}
	env.track(as.Process)
	if !controllers {
		return as, nil, nil
	}
	kubeconfig, err := WriteKubeconfig(as.AdminConfig(), name, filepath.Join(env.Dir, "kubeconfigs", name+"-direct.kubeconfig"))
	if err != nil {
		return nil, nil, err
	}
	cm := NewProcess(name+"-controller-manager", env.bins.Path(BinKubeControllerManager),
		workspaceControllerManagerArgs(kubeconfig, env.PKI, env.workspaceRootCAFile), env.LogDir)
	if err := cm.Start(); err != nil {
		return nil, nil, err
	}
	env.track(cm)
	return as, cm, nil
}

func (env *Environment) track(p *Process) {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.procs = append(env.procs, p)
}

// Workspace returns the workspace with path, or nil.
func (env *Environment) Workspace(path string) *Workspace {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.workspaces[path]
}

// Cluster returns the physical cluster named name, or nil.
func (env *Environment) Cluster(name string) *PhysicalCluster { return env.clusters[name] }

// StartupDuration is how long Start took.
func (env *Environment) StartupDuration() time.Duration { return env.startTaken }

// UpstreamConfig returns a rest config for user to the front proxy's root.
func (env *Environment) UpstreamConfig(user string) *rest.Config {
	return env.FrontProxy.BaseConfig(user)
}

// Processes returns every process the environment started, including restarted ones.
func (env *Environment) Processes() []*Process {
	env.mu.Lock()
	defer env.mu.Unlock()
	return append([]*Process(nil), env.procs...)
}

// Track adds a process started by a test (a syncer, say) to the environment, so that it is
// stopped with the environment and its log is printed on failure.
func (env *Environment) Track(p *Process) { env.track(p) }

// Stop stops every process, etcd last, and waits for all of them to exit.
func (env *Environment) Stop() error {
	env.mu.Lock()
	if env.stopped {
		env.mu.Unlock()
		return nil
	}
	env.stopped = true
	procs := append([]*Process(nil), env.procs...)
	closers := env.closers
	env.mu.Unlock()

	var errs []error
	var etcd []*Process
	var wg sync.WaitGroup
	var errMu sync.Mutex
	for _, p := range procs {
		if env.Etcd != nil && p == env.Etcd.Process {
			etcd = append(etcd, p)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(3 * time.Second); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, c := range closers {
		errs = append(errs, c())
	}
	for _, p := range etcd {
		errs = append(errs, p.Stop(5*time.Second))
	}
	return errors.Join(errs...)
}

// RemoveDir deletes the environment directory if the environment created it.
func (env *Environment) RemoveDir() error {
	if !env.ownDir {
		return nil
	}
	if err := os.RemoveAll(env.Dir); err != nil {
		return fmt.Errorf("failed to remove %s: %w", env.Dir, err)
	}
	return nil
}

// LogTails returns the last n lines of every process log, keyed by file name.
func (env *Environment) LogTails(n int) map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(env.LogDir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(env.LogDir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		out[e.Name()] = strings.Join(lines, "\n")
	}
	return out
}

// NewFaultProxy starts a fault proxy in front of target ("127.0.0.1:port"); it is closed
// with the environment.
func (env *Environment) NewFaultProxy(target string) (*FaultProxy, error) {
	fp, err := StartFaultProxy(target)
	if err != nil {
		return nil, err
	}
	env.mu.Lock()
	env.closers = append([]func() error{fp.Close}, env.closers...)
	env.mu.Unlock()
	return fp, nil
}
