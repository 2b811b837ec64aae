package localenv

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
)

// RootShard names the environment's first shard: Environment.Etcd and Environment.FrontProxy,
// holding Options.Workspaces.
const RootShard = "root"

// ShardOptions describe a shard beyond the root one.
type ShardOptions struct {
	// Name names the shard, its etcd and its front proxy; unique, not RootShard.
	Name string
	// Workspaces are the logical-cluster paths stored on this shard.
	Workspaces []string
}

// Shard is one kcp-like shard: an etcd holding its workspaces and a front proxy whose
// /clusters/* lists and watches across exactly those workspaces (their resourceVersions
// are one etcd's revisions, as on a kcp shard). The environment's front proxy routes
// /clusters/<path|name> to the workspaces of every shard, as kcp's front proxy does.
type Shard struct {
	Name       string
	Etcd       *Etcd
	FrontProxy *FrontProxy
}

// Shard returns the shard named name (RootShard, or "" for it), or nil.
func (env *Environment) Shard(name string) *Shard {
	if name == "" {
		name = RootShard
	}
	return env.shards[name]
}

// Shards returns every shard, the root shard first, then by name.
func (env *Environment) Shards() []*Shard {
	out := make([]*Shard, 0, len(env.shards))
	for _, s := range env.shards {
		if s.Name != RootShard {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return append([]*Shard{env.shards[RootShard]}, out...)
}

// placedWorkspace is a workspace to start and its shard.
type placedWorkspace struct {
	path  string
	shard *Shard
}

// startShards starts the etcd and front proxy of every shard beyond the root one and
// returns every workspace of opts with its shard.
func (env *Environment) startShards(ctx context.Context, opts Options) ([]placedWorkspace, error) {
	root := &Shard{Name: RootShard, Etcd: env.Etcd, FrontProxy: env.FrontProxy}
	env.shards = map[string]*Shard{RootShard: root}
	placements := make([]placedWorkspace, 0, len(opts.Workspaces))
	for _, p := range opts.Workspaces {
		placements = append(placements, placedWorkspace{path: p, shard: root})
	}
	for _, so := range opts.Shards {
		if so.Name == "" || env.shards[so.Name] != nil {
			return nil, fmt.Errorf("shard name %q is empty or not unique", so.Name)
		}
		dir := filepath.Join(env.Dir, "shards", so.Name)
		etcd, err := startNamedEtcd(ctx, env.bins, "etcd-"+so.Name, dir, env.LogDir)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", so.Name, err)
		}
		env.track(etcd.Process)
		fp, err := startNamedFrontProxy("front-proxy-"+so.Name, env.PKI, env.Tokens, etcd, env.LogDir)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", so.Name, err)
		}
		env.closers = append(env.closers, fp.Close)
		shard := &Shard{Name: so.Name, Etcd: etcd, FrontProxy: fp}
		env.shards[so.Name] = shard
		for _, p := range so.Workspaces {
			placements = append(placements, placedWorkspace{path: p, shard: shard})
		}
	}
	return placements, nil
}
