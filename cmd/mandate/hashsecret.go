package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

func newHashSecretCmd() *cobra.Command {
	var generate bool
	var cost int
	cmd := &cobra.Command{
		Use:   "hash-secret",
		Short: "Print the bcrypt hash of a client secret for the config file",
		Long: `Print the bcrypt hash of a client secret, for a client's secret_hash.

The secret is read from standard input (one line), never from the command line,
so it stays out of shell history and process lists. With --generate, a new
random 256-bit secret is made and printed with its hash; give the secret to the
client and put only the hash in the configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkBcryptCost("--cost", cost); err != nil {
				return err
			}
			var secret string
			if generate {
				var b [32]byte
				if _, err := rand.Read(b[:]); err != nil {
					return err
				}
				secret = base64.RawURLEncoding.EncodeToString(b[:])
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no secret on standard input (pipe one in, or use --generate)")
				}
				secret = strings.TrimRight(line, "\r\n")
				if secret == "" {
					return errors.New("the secret is empty")
				}
			}
			if len(secret) > 72 {
				return errors.New("the secret is longer than 72 bytes, bcrypt's limit")
			}
			h, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if generate {
				fmt.Fprintf(out, "secret:      %s\n", secret)
				fmt.Fprintf(out, "secret_hash: %s\n", h)
				return nil
			}
			fmt.Fprintln(out, string(h))
			return nil
		},
	}
	cmd.Flags().BoolVar(&generate, "generate", false, "generate a new random secret and print it with its hash")
	cmd.Flags().IntVar(&cost, "cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost, %d..%d (each step doubles the work of every check)", bcrypt.MinCost, bcrypt.MaxCost))
	return cmd
}

// checkBcryptCost refuses a cost bcrypt would not honour: below MinCost it
// silently hashes at DefaultCost, above MaxCost it fails.
func checkBcryptCost(flag string, cost int) error {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return fmt.Errorf("%s %d is outside bcrypt's %d..%d (default %d)", flag, cost, bcrypt.MinCost, bcrypt.MaxCost, bcrypt.DefaultCost)
	}
	return nil
}
