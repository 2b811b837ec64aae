package localenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

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
