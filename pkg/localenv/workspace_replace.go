package localenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AddWorkspace starts a new workspace at path while the environment runs, as one created in
// kcp after everything else: its apiserver (and, unless the environment was started with
// NoWorkspaceControllers, its controllers), its logical-cluster name, and its routes in
// the front proxy, including the wildcard endpoint. It has no CRDs and no RBAC.
func (env *Environment) AddWorkspace(ctx context.Context, path string) (*Workspace, error) {
	return env.AddShardWorkspace(ctx, RootShard, path)
}

// AddShardWorkspace is AddWorkspace on the shard named shardName.
func (env *Environment) AddShardWorkspace(ctx context.Context, shardName, path string) (*Workspace, error) {
	if env.Workspace(path) != nil {
		return nil, fmt.Errorf("failed to add workspace %s: it exists", path)
	}
	shard := env.Shard(shardName)
	if shard == nil {
		return nil, fmt.Errorf("failed to add workspace %s: no shard %q", path, shardName)
	}
	ws, err := env.startWorkspace(ctx, path, shard, !env.noWorkspaceControllers)
	if err != nil {
		return nil, fmt.Errorf("failed to add workspace %s: %w", path, err)
	}
	env.mu.Lock()
	env.workspaces[path] = ws
	env.mu.Unlock()
	return ws, nil
}

// ReplaceWorkspace serves workspace path from a fresh apiserver with empty storage (a new
// etcd prefix) behind the same front-proxy path: what clients of a workspace deleted and
// re-created at the same path, or restored from an empty backup, see. The new apiserver
// is up before the front proxy switches to it; then the old one (and its controllers) is
// stopped. The logical-cluster name stays (a restored logical cluster is the same one). Tokens stay valid, but RBAC, CRDs and objects are gone: the caller re-creates
// what it needs (GrantSyncer, InstallCRDs). The Workspace returned by Workspace(path) is
// updated in place. Not safe for concurrent use with other calls on the workspace.
func (env *Environment) ReplaceWorkspace(ctx context.Context, path string) error {
	ws := env.Workspace(path)
	if ws == nil {
		return fmt.Errorf("failed to replace workspace %s: no such workspace", path)
	}
	env.mu.Lock()
	env.replacements++
	generation := env.replacements
	env.mu.Unlock()
	name := fmt.Sprintf("ws-%s-r%d", strings.ReplaceAll(path, ":", "-"), generation)
	prefix := fmt.Sprintf("/workspaces/%s-r%d", path, generation)
	shard := env.Shard(ws.Shard)
	as, cm, err := env.startWorkspaceServers(ctx, name, ws.Name, shard.Etcd, prefix, ws.ControllerManager != nil)
	if err != nil {
		return fmt.Errorf("failed to replace workspace %s: %w", path, err)
	}
	if err := shard.FrontProxy.AddWorkspace(ws.Path, ws.Name, as.URL, prefix); err != nil {
		return fmt.Errorf("failed to replace workspace %s: %w", path, err)
	}
	if shard.FrontProxy != env.FrontProxy {
		if err := env.FrontProxy.RouteWorkspace(ws.Path, ws.Name, as.URL); err != nil {
			return fmt.Errorf("failed to replace workspace %s: %w", path, err)
		}
	}
	oldAPIServer, oldControllers := ws.APIServer, ws.ControllerManager
	ws.APIServer, ws.ControllerManager = as, cm
	var errs []error
	if oldControllers != nil {
		errs = append(errs, oldControllers.Stop(3*time.Second))
	}
	errs = append(errs, oldAPIServer.Stop())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to stop the replaced apiserver of workspace %s: %w", path, err)
	}
	return nil
}
