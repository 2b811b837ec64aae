package localenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Binary names the environment runs.
const (
	BinEtcd                  = "etcd"
	BinKubeAPIServer         = "kube-apiserver"
	BinKubeControllerManager = "kube-controller-manager"
	BinKubeScheduler         = "kube-scheduler"
	BinKwok                  = "kwok"
	kwokStagesFile           = "kwok-stages.yaml"
)

// RepoRoot returns the root of the TMC repository, found by walking up from the working
// directory to the go.mod of module github.com/tmc-dev/tmc.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("failed to get working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/tmc-dev/tmc\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the TMC repository (no go.mod of github.com/tmc-dev/tmc above the working directory)")
		}
		dir = parent
	}
}

// BinDir returns the directory holding the test binaries: $TMC_BIN_DIR if set, otherwise
// the version-keyed cache that hack/test-binaries.sh fills
// ($XDG_CACHE_HOME/tmc/bin/<versions from hack/tools/go.mod>).
func BinDir() (string, error) {
	if d := os.Getenv("TMC_BIN_DIR"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	versions, err := toolVersions(filepath.Join(root, "hack", "tools", "go.mod"))
	if err != nil {
		return "", err
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("failed to find the home directory: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	key := fmt.Sprintf("k8s-%s_etcd-%s_kwok-%s", versions["k8s.io/kubernetes"], versions["go.etcd.io/etcd/server/v3"], versions["sigs.k8s.io/kwok"])
	return filepath.Join(cache, "tmc", "bin", key), nil
}

func toolVersions(goMod string) (map[string]string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", goMod, err)
	}
	defer func() { _ = f.Close() }()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 {
			switch fields[0] {
			case "k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok":
				if _, seen := out[fields[0]]; !seen {
					out[fields[0]] = fields[1]
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", goMod, err)
	}
	if len(out) != 3 {
		return nil, fmt.Errorf("%s does not pin kubernetes, etcd and kwok: found %v", goMod, out)
	}
	return out, nil
}

// Binaries locates the test binaries.
type Binaries struct {
	Dir string
}

// FindBinaries returns the test binaries, or an error naming the command that builds them.
func FindBinaries() (*Binaries, error) {
	dir, err := BinDir()
	if err != nil {
		return nil, err
	}
	for _, b := range []string{BinEtcd, BinKubeAPIServer, BinKubeControllerManager, BinKubeScheduler, BinKwok, kwokStagesFile} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return nil, fmt.Errorf("test binary %s is missing in %s: run 'make test-binaries' (about 15 minutes the first time): %w", b, dir, err)
		}
	}
	return &Binaries{Dir: dir}, nil
}

// Path returns the path of binary name.
func (b *Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }
