package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X github.com/tmc-dev/tmc/pkg/version.gitVersion=...".
var (
	gitVersion = ""
	gitCommit  = ""
	buildDate  = ""
)

// Info describes a build.
type Info struct {
	GitVersion string `json:"gitVersion"`
	GitCommit  string `json:"gitCommit"`
	BuildDate  string `json:"buildDate"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
}

// Get returns the build's version information. Without ldflags the version is
// "v0.0.0-dev" and the commit comes from the Go build info when available.
func Get() Info {
	info := Info{
		GitVersion: gitVersion,
		GitCommit:  gitCommit,
		BuildDate:  buildDate,
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
	}
	if info.GitVersion == "" {
		info.GitVersion = "v0.0.0-dev"
	}
	if info.GitCommit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					info.GitCommit = s.Value
				}
			}
		}
	}
	return info
}

// String returns a one-line description, e.g. "v0.1.0 (commit abc, go1.26, linux/amd64)".
func (i Info) String() string {
	commit := i.GitCommit
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("%s (commit %s, built %s, %s, %s)", i.GitVersion, commit, orUnknown(i.BuildDate), i.GoVersion, i.Platform)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
