package localenv

import "strings"

// builtinStoragePrefixes are the etcd key prefixes (under an apiserver's --etcd-prefix) of
// the built-in resources not stored under their own resource name, keyed by group/resource.
// Read from a running environment (a keys-only range of a workspace's etcd prefix).
var builtinStoragePrefixes = map[string]string{
	"/services":                   "services/specs",
	"/endpoints":                  "services/endpoints",
	"/nodes":                      "minions",
	"/replicationcontrollers":     "controllers",
	"networking.k8s.io/ingresses": "ingress",
	"extensions/ingresses":        "ingress",
	"events.k8s.io/events":        "events",
	"apiextensions.k8s.io/customresourcedefinitions": "apiextensions.k8s.io/customresourcedefinitions",
	"apiregistration.k8s.io/apiservices":             "apiregistration.k8s.io/apiservices",
}

// builtinGroups are the API groups served by kube-apiserver itself, whose resources are
// stored under their resource name (unless listed above); any other group is a custom
// resource's, stored under <group>/<resource>.
var builtinGroups = map[string]bool{
	"": true, "apps": true, "batch": true, "autoscaling": true, "policy": true, "rbac.authorization.k8s.io": true,
	"networking.k8s.io": true, "storage.k8s.io": true, "scheduling.k8s.io": true, "coordination.k8s.io": true,
	"discovery.k8s.io": true, "node.k8s.io": true, "certificates.k8s.io": true, "events.k8s.io": true,
	"admissionregistration.k8s.io": true, "flowcontrol.apiserver.k8s.io": true, "resource.k8s.io": true,
	"storagemigration.k8s.io": true, "internal.apiserver.k8s.io": true, "apiextensions.k8s.io": true,
	"apiregistration.k8s.io": true,
}

// storagePrefix returns the etcd key prefix of group/resource below an apiserver's
// --etcd-prefix: <prefix>/<storagePrefix>/[<namespace>/]<name> is where an object lives.
func storagePrefix(group, resource string) string {
	if p, ok := builtinStoragePrefixes[group+"/"+resource]; ok {
		return p
	}
	if builtinGroups[group] {
		return resource
	}
	return group + "/" + resource
}

// resourceKeyPrefix returns the etcd key prefix of every object of req in the workspace
// stored under etcdPrefix, with a trailing slash (services/specs/ is not services/endpoints/).
func resourceKeyPrefix(etcdPrefix string, req wildcardRequest) string {
	p := strings.TrimSuffix(etcdPrefix, "/") + "/" + storagePrefix(req.group, req.resource) + "/"
	if req.namespace != "" {
		p += req.namespace + "/"
	}
	return p
}
