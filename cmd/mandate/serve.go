package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/tokens"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the token service",
		Long: `Run the token service: token exchange, client credentials, revocation,
introspection and discovery, over an embedded bbolt store in data_dir, or
over PostgreSQL when store.postgres.dsn (MANDATE_STORE_POSTGRES_DSN) or
store.postgres.dsn_file names a database, which several replicas may share.
Configuration comes from --config, MANDATE_* environment variables and flags.`,
		Args: configFileArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, warnings, err := server.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log)
			for _, w := range warnings {
				log.Warn(w)
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			var summary io.Writer
			if isTerminal(cmd.OutOrStdout()) {
				summary = cmd.OutOrStdout()
			}
			return runServer(ctx, cfg, log, summary)
		},
	}
	cmd.Flags().String("listen", "", "listen address, host:port (config key listen)")
	cmd.Flags().String("data-dir", "", "directory of mandate.db (config key data_dir)")
	cmd.Flags().String("issuer", "", "issuer URL (config key issuer)")
	return cmd
}

// newLogger is serve's log: JSON lines (what a log pipeline reads) or text
// (log.format), from log.level up.
func newLogger(w io.Writer, c server.LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel()}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runServer serves until ctx ends, then shuts down gracefully. A summary
// writer (serve's standard output when it is a terminal) gets where the
// server is and what to do next.
func runServer(ctx context.Context, cfg *server.Config, log *slog.Logger, summary io.Writer) error {
	s, err := server.Start(cfg, server.Options{Logger: log})
	if err != nil {
		return err
	}
	if summary != nil {
		printSummary(summary, s, cfg)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-s.Done():
			break wait
		case <-hup:
			if s.Policy == nil {
				log.Warn("SIGHUP: no policy.dir configured, nothing to reload")
			} else {
				_ = s.Policy.Reload() // logs the outcome; a broken set is rejected
			}
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// printSummary tells a person at a terminal where the server is, what it
// runs with, and what to do next; logs stay on standard error.
func printSummary(w io.Writer, s *server.Server, cfg *server.Config) {
	_, sealed := s.KeyStore.(*tokens.SealedKeyStore)
	signing := fmt.Sprintf("%s key %s, stored in clear (set signing.kek_file to seal it)", s.Keys.CurrentAlg(), s.Keys.CurrentKeyID())
	if sealed {
		signing = fmt.Sprintf("%s key %s, sealed under the KEK", s.Keys.CurrentAlg(), s.Keys.CurrentKeyID())
	}
	pol := "off: only attenuation limits delegation (set policy.dir)"
	if s.Policy != nil {
		pol = fmt.Sprintf("%d Cedar policies from %s, reloaded on change and SIGHUP", len(s.Policy.Current().IDs()), s.Policy.Dir())
	}
	admins := 0
	var adminID string
	for _, c := range cfg.Clients {
		if c.Role == string(delegation.RoleAdmin) {
			admins++
			if adminID == "" {
				adminID = c.ID
			}
		}
	}
	fmt.Fprintf(w, "Mandate is serving.\n")
	fmt.Fprintf(w, "  listening  %s\n", s.Addr)
	fmt.Fprintf(w, "  issuer     %s\n", s.URL)
	fmt.Fprintf(w, "  metadata   %s%s\n", s.URL, httpapi.PathMetadata)
	fmt.Fprintf(w, "  store      %s\n", s.StoreName)
	fmt.Fprintf(w, "  signing    %s\n", signing)
	fmt.Fprintf(w, "  policy     %s\n", pol)
	fmt.Fprintf(w, "  clients    %d registered, %d admin\n", len(cfg.Clients), admins)
	fmt.Fprintf(w, "Next:\n")
	fmt.Fprintf(w, "  curl -s %s%s          # the endpoints\n", s.URL, httpapi.PathMetadata)
	if adminID != "" {
		fmt.Fprintf(w, "  export MANDATE_SERVER=%s MANDATE_CLIENT_ID=%s MANDATE_CLIENT_SECRET=...\n", s.URL, adminID)
		fmt.Fprintf(w, "  mandate tokens list --active      # operator commands (README, \"Operating it\")\n")
	} else {
		fmt.Fprintf(w, "  (no admin client: add one with role: admin to use the operator commands)\n")
	}
	fmt.Fprintf(w, "Logs go to standard error (log.format: %s). Ctrl-C stops the server.\n", cmp.Or(cfg.Log.Format, "json"))
}
