package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/chain/vectors"
)

// newVectorsCmd is `mandate vectors verify FILE`: the Go reference runner of
// the cross-language test vectors (testdata/vectors/README.md).
func newVectorsCmd() *cobra.Command {
	cmd := groupCmd(&cobra.Command{Use: "vectors", Short: "Run the cross-language test vectors"})
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Run a vector file through the Go reference verifier, one JSON line per case",
		Long: `Run a vector file (testdata/vectors/README.md: verification, scope or
per-call Cedar) through the Go reference implementation and print one JSON
line per case, {"name": "…", "verdict": …}. It exits 0 whatever the verdicts
(comparing them with "expect" is the tests' business), 2 when the file cannot
be read. The Python and TypeScript SDKs ship the same runner, so any verifier
can be held to any vector file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			results, err := vectors.Run(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			for _, r := range results {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(verify)
	return cmd
}
