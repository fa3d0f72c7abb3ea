package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the token service",
		Long: `Run the token service: token exchange, client credentials, revocation,
introspection and discovery, over an embedded bbolt store in data_dir.
Configuration comes from --config, MANDATE_* environment variables and flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, warnings, err := server.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			for _, w := range warnings {
				log.Warn(w)
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			return runServer(ctx, cfg, log)
		},
	}
	cmd.Flags().String("listen", "", "listen address, host:port (config key listen)")
	cmd.Flags().String("data-dir", "", "directory of mandate.db (config key data_dir)")
	cmd.Flags().String("issuer", "", "issuer URL (config key issuer)")
	return cmd
}

// runServer serves until ctx ends, then shuts down gracefully.
func runServer(ctx context.Context, cfg *server.Config, log *slog.Logger) error {
	s, err := server.Start(cfg, server.Options{Logger: log})
	if err != nil {
		return err
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
