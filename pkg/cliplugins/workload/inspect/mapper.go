package inspect

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// resolveResource maps what a user types to a resource type, as kubectl does: a plural,
// singular or short name ("deployments", "deployment", "deploy"), optionally with a group
// ("deployments.apps") or version and group ("deployments.v1.apps"), or a Kind
// ("Deployment", "Deployment.apps"). Short names need a mapper that knows them, such as the
// one of ConfigFlags.ToRESTMapper.
func resolveResource(mapper meta.RESTMapper, arg string) (*meta.RESTMapping, error) {
	if arg == "" {
		return nil, fmt.Errorf("a resource type is required")
	}
	fullySpecified, groupResource := schema.ParseResourceArg(strings.ToLower(arg))
	var gvk schema.GroupVersionKind
	if fullySpecified != nil {
		gvk, _ = mapper.KindFor(*fullySpecified)
	}
	if gvk.Empty() {
		gvk, _ = mapper.KindFor(groupResource.WithVersion(""))
	}
	if !gvk.Empty() {
		return mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}

	// A Kind, optionally with version and group.
	fullyKind, groupKind := schema.ParseKindArg(arg)
	if fullyKind != nil {
		if m, err := mapper.RESTMapping(fullyKind.GroupKind(), fullyKind.Version); err == nil {
			return m, nil
		}
	}
	m, err := mapper.RESTMapping(groupKind)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the server doesn't have a resource type %q", arg)
		}
		return nil, fmt.Errorf("failed to resolve resource type %q: %w", arg, err)
	}
	return m, nil
}

// parseObjectArgs accepts "<resource>/<name>" or "<resource> <name>".
func parseObjectArgs(args []string) (resource, name string, err error) {
	switch len(args) {
	case 1:
		resource, name, ok := strings.Cut(args[0], "/")
		if !ok || resource == "" || name == "" {
			return "", "", fmt.Errorf("expected <resource>/<name>, got %q", args[0])
		}
		return resource, name, nil
	case 2:
		if args[0] == "" || args[1] == "" || strings.Contains(args[0], "/") {
			return "", "", fmt.Errorf("expected <resource> <name>, got %q", strings.Join(args, " "))
		}
		return args[0], args[1], nil
	}
	return "", "", fmt.Errorf("expected one object as <resource>/<name>, got %d arguments", len(args))
}
