package localenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// workspaceControllers are the kube-controller-manager controllers every workspace runs:
// those kcp runs for each logical cluster (kcp's pkg/server/controllers.go), so that every
// namespace holds a kube-root-ca.crt ConfigMap and a default ServiceAccount as on kcp, and
// the protection controllers, so that the finalizers the apiserver's
// StorageObjectInUseProtection admission puts on PersistentVolumeClaims (and PVs) are
// released and a namespace holding a claim finishes deleting.
var workspaceControllers = []string{
	"namespace-controller",
	"garbage-collector-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller",
}

// workspaceRootCAHeader starts the CA bundle the workspaces publish as kube-root-ca.crt.
// On kcp that bundle is kcp's CA, never the physical cluster's; here one CA signs every
// server, so the header is what tells the hub's bundle from a physical cluster's, byte for
// byte. Text outside PEM blocks is ignored by every PEM reader.
const workspaceRootCAHeader = "# Root CA of the TMC local environment's workspaces (the hub), published as kube-root-ca.crt\n"

// writeWorkspaceRootCA writes the CA bundle the workspaces' root-CA publisher publishes.
func writeWorkspaceRootCA(pki *PKI) (string, error) {
	path := filepath.Join(pki.Dir, "workspace-root-ca.crt")
	if err := os.WriteFile(path, append([]byte(workspaceRootCAHeader), pki.CAData...), 0o600); err != nil {
		return "", fmt.Errorf("failed to write the workspaces' root CA: %w", err)
	}
	return path, nil
}

// workspaceControllerManagerArgs are the flags of a workspace's kube-controller-manager.
// It runs as the admin, as kcp's controllers run with kcp's own identity: no
// per-controller service-account credentials are needed.
func workspaceControllerManagerArgs(kubeconfig string, pki *PKI, rootCAFile string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--service-account-private-key-file=" + pki.ServiceAccountKeyFile,
		"--root-ca-file=" + rootCAFile,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=" + strings.Join(workspaceControllers, ","),
		"--v=1",
	}
}
