// Command mandate is the Mandate delegation token service: `serve` runs it,
// `demo` tells its story end to end on a throw-away store, and `hash-secret`
// prepares client secrets for the configuration file.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd(os.Stdin, os.Stdout, os.Stderr).Execute(); err != nil {
		code, show := exitCode(err) // 1 and 3: the verdict is already printed
		if show {
			fmt.Fprintln(os.Stderr, "mandate:", err)
		}
		os.Exit(code)
	}
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "mandate",
		Short:         "Delegation tokens for multi-agent AI systems (RFC 8693)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("mandate {{.Version}}\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("config", "", "YAML configuration file")
	root.SetHelpCommand(newHelpCmd()) // an unknown topic is an error, like an unknown command
	root.AddCommand(newServeCmd(), newDemoCmd(), newHashSecretCmd(), newPolicyCmd(),
		newLineageCmd(), newRevokeCmd(), newTokensCmd(), newInspectCmd(), newKeysCmd(), newAuditCmd(), newBenchCmd(), newConfigCmd(), newInitCmd(), newVectorsCmd(), newStoreCmd())
	return root
}

// version is the module version and the commit the binary was built from
// (from the build info Go records; "(devel)" and the commit for a checkout).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " commit " + rev[:min(12, len(rev))] + modified
	} else {
		v += " (commit not recorded: built outside a checkout or with -buildvcs=false)"
	}
	return v + " " + bi.GoVersion
}
