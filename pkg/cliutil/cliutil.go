package cliutil

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // enables --logging-format=json

	"github.com/tmc-dev/tmc/pkg/version"
)

// Logging carries the logging configuration bound to a command's flags.
type Logging struct {
	Config *logsapi.LoggingConfiguration
}

// NewLogging returns a logging configuration with Kubernetes defaults.
func NewLogging() *Logging {
	return &Logging{Config: logsapi.NewLoggingConfiguration()}
}

// AddFlags adds the component-base logging flags to fs.
func (l *Logging) AddFlags(fs *pflag.FlagSet) {
	logsapi.AddFlags(l.Config, fs)
}

// Apply validates the configuration and installs the logger. Call it once flags are parsed.
func (l *Logging) Apply() error {
	if err := logsapi.ValidateAndApply(l.Config, nil); err != nil {
		return fmt.Errorf("invalid logging flags: %w", err)
	}
	return nil
}

// AddVersionFlag makes `--version` print the build's version and exit, before anything else
// (flag validation included) runs.
func AddVersionFlag(cmd *cobra.Command) {
	cmd.Version = version.Get().String()
	cmd.SetVersionTemplate(fmt.Sprintf("%s {{.Version}}\n", cmd.Name()))
}

// InitLogs sets up klog for a command's lifetime; defer the returned function.
func InitLogs() func() {
	logs.InitLogs()
	return logs.FlushLogs
}
