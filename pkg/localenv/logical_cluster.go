package localenv

import (
	"crypto/sha256"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// logicalClusterName returns the logical-cluster name of the workspace at path. As on kcp,
// it is an opaque name distinct from the path — except for "root", whose name is "root" —
// so that code computing keys from paths instead of names fails here as it would on kcp.
// kcp draws names at random; here they are derived from the path so that an environment's
// names are the same every time it starts.
func logicalClusterName(path logicalcluster.Path) string {
	if path.String() == "root" {
		return "root"
	}
	hash := sha256.Sum256([]byte("tmc-localenv logical cluster " + path.String()))
	// 36^16 < 2^83: a 256-bit hash has at least 16 base-36 digits but with odds of 2^-173.
	return new(big.Int).SetBytes(hash[:]).Text(36)[:16]
}

// logicalClusterPolicy is the mutating admission policy every workspace apiserver loads
// at start-up (a static manifest: present before the apiserver's first write, and not
// removable through the API). It stamps kcp.io/cluster=<name> on every object created or
// updated, as kcp records the logical cluster on every object it stores; a client cannot
// set another value.
const logicalClusterPolicy = `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata:
  name: logical-cluster.static.k8s.io
spec:
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  matchConstraints:
    resourceRules:
    - apiGroups: ["*"]
      apiVersions: ["*"]
      resources: ["*"]
      operations: ["CREATE", "UPDATE"]
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{metadata: Object.metadata{annotations: {"%s": "%s"}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: logical-cluster.static.k8s.io
spec:
  policyName: logical-cluster.static.k8s.io
`

const logicalClusterAdmissionConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionPolicy
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: MutatingAdmissionPolicyConfiguration
    staticManifestsDir: %s
`

// writeLogicalClusterAdmission writes, under dir, the admission configuration that makes a
// workspace apiserver stamp name on every object, and returns the kube-apiserver flag.
func writeLogicalClusterAdmission(dir, name string) (string, error) {
	manifests := filepath.Join(dir, "static")
	if err := os.MkdirAll(manifests, 0o700); err != nil {
		return "", fmt.Errorf("failed to create %s: %w", manifests, err)
	}
	policy := fmt.Sprintf(logicalClusterPolicy, logicalcluster.AnnotationKey, name)
	if err := os.WriteFile(filepath.Join(manifests, "logical-cluster.yaml"), []byte(policy), 0o600); err != nil {
		return "", fmt.Errorf("failed to write the logical-cluster admission policy: %w", err)
	}
	abs, err := filepath.Abs(manifests)
	if err != nil {
		return "", fmt.Errorf("failed to resolve %s: %w", manifests, err)
	}
	config := filepath.Join(dir, "admission.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(logicalClusterAdmissionConfig, abs)), 0o600); err != nil {
		return "", fmt.Errorf("failed to write the admission configuration: %w", err)
	}
	return "--admission-control-config-file=" + config, nil
}
