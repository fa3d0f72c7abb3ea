package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
)

func newStoreCmd() *cobra.Command {
	cmd := groupCmd(&cobra.Command{Use: "store", Short: "Move a store between backends"})
	var from, dsnFile, replica string
	copyCmd := &cobra.Command{
		Use:   "copy",
		Short: "Copy a stopped server's bbolt data file into an empty PostgreSQL database",
		Long: `Copy a stopped server's bbolt data file (or data_dir) into an empty PostgreSQL
database: every token, the revocation log (its sequence numbers, head and store
id, so verifiers' feed cursors stay valid), suspensions, the signing keys
(sealed under the key-encryption key, which is required as for serve), and the
audit trail, byte for byte, as the chain of one replica (--replica).

The file is opened read-only; a database that already holds records is refused.
The DSN comes from --to-dsn-file, MANDATE_STORE_POSTGRES_DSN or --config, and is
never printed. Do not serve the bbolt file again afterwards.`,
		Args: cobra.NoArgs,
	}
	format := addFormatFlag(copyCmd, "text", "json")
	copyCmd.Flags().StringVar(&from, "from", "", "the bbolt data file (or data_dir) of a stopped server")
	copyCmd.Flags().StringVar(&dsnFile, "to-dsn-file", "", "file holding the target database's DSN (chmod 600; env MANDATE_STORE_POSTGRES_DSN otherwise)")
	copyCmd.Flags().StringVar(&replica, "replica", "", "replica whose audit chain the copied trail becomes (default: store.postgres.replica of --config, else the host name)")
	copyCmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if from == "" {
			return errors.New("--from is required: the stopped server's data file or data_dir")
		}
		var cfg server.Config
		if path, _ := cmd.Flags().GetString("config"); path != "" {
			c, _, err := server.Load(path, nil)
			if err != nil {
				return err
			}
			cfg = *c
		} else {
			cfg.Signing.KEK, cfg.Signing.KEKFile = os.Getenv("MANDATE_SIGNING_KEK"), os.Getenv("MANDATE_SIGNING_KEK_FILE")
			cfg.Store.Postgres.DSN = os.Getenv("MANDATE_STORE_POSTGRES_DSN")
		}
		if dsnFile != "" {
			cfg.Store.Postgres.DSN, cfg.Store.Postgres.DSNFile = "", dsnFile
		}
		if replica == "" {
			replica = cfg.Store.Postgres.Replica
		}
		dsn, err := cfg.Store.Postgres.ReadDSN()
		if err != nil {
			return err
		}
		if dsn == "" {
			return errors.New("no target database: give --to-dsn-file, MANDATE_STORE_POSTGRES_DSN or --config with store.postgres")
		}
		kek, err := cfg.Signing.KEKBytes()
		if err != nil {
			return err
		}
		rep, err := server.CopyStore(cmd.Context(), from, dsn, replica, kek)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if *format == "json" {
			return json.NewEncoder(out).Encode(rep)
		}
		_, err = fmt.Fprintf(out, "copied store %s: %d tokens, %d revocations (log head %d), %d suspensions, %d signing keys (sealed), %d audit records as replica %q's chain\n",
			rep.StoreID, rep.Tokens, rep.Revocations, rep.RevHead, rep.Suspensions, rep.Keys, rep.Audit, rep.Replica)
		return err
	}
	cmd.AddCommand(copyCmd)
	return cmd
}
