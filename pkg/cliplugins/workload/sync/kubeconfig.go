package sync

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tmc-dev/tmc/sdk/apis/logicalcluster"
)

// splitUpstreamURL splits the current server URL into the upstream root (scheme://host
// and any path prefix before /clusters/) and the workspace it names; a URL without
// /clusters/ is a plain Kubernetes hub: the root is the URL and the workspace is empty.
func splitUpstreamURL(host string) (root string, workspace logicalcluster.Path, err error) {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return "", logicalcluster.Path{}, fmt.Errorf("server %q is not a valid URL", host)
	}
	prefix, workspace := logicalcluster.SplitClusterURL(u.Path)
	if !workspace.Empty() {
		if err := workspace.Validate(); err != nil {
			return "", logicalcluster.Path{}, fmt.Errorf("server %q names an invalid workspace: %w", host, err)
		}
	}
	u.Path = strings.TrimSuffix(prefix, "/")
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return u.String(), workspace, nil
}

// upstreamKubeconfig returns the syncer's kubeconfig of the upstream: the root URL (the
// syncer adds /clusters/<path> per workspace), the TLS settings of the current connection,
// and the token read from tokenFile. Nothing in it is secret.
func upstreamKubeconfig(current *rest.Config, root, tokenFile string) ([]byte, error) {
	caData := current.CAData
	if len(caData) == 0 && current.CAFile != "" {
		b, err := os.ReadFile(current.CAFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read the certificate authority of the current kubeconfig: %w", err)
		}
		caData = b
	}
	const name = "upstream"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   root,
		CertificateAuthorityData: caData,
		InsecureSkipTLSVerify:    current.Insecure,
		TLSServerName:            current.ServerName,
	}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{TokenFile: tokenFile}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to write the upstream kubeconfig: %w", err)
	}
	return b, nil
}
