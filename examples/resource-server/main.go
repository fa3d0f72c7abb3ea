// Command resource-server is a minimal API protected by Mandate: every request
// is verified locally with verifier.Verifier (signature, audience, expiry, the
// delegation chain, and revocations learned from Mandate's feed), and each
// route demands a scope. It also publishes RFC 9728 metadata so clients (an
// MCP client, say) can discover that Mandate issues its tokens.
//
// Run it next to a Mandate server that registers it as a resource_server:
//
//	MANDATE_ISSUER=http://127.0.0.1:8080 \
//	RS_AUDIENCE=https://orders.example \
//	RS_CLIENT_ID=orders-api RS_CLIENT_SECRET=... \
//	go run ./examples/resource-server
//
// then call it with a delegated token:
//
//	curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8090/orders
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("resource server stopped", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	issuer, audience := os.Getenv("MANDATE_ISSUER"), os.Getenv("RS_AUDIENCE")
	id, secret := os.Getenv("RS_CLIENT_ID"), os.Getenv("RS_CLIENT_SECRET")
	listen := os.Getenv("RS_LISTEN")
	if listen == "" {
		listen = "127.0.0.1:8090"
	}
	// The URL clients call this API by, which DPoP proofs must name.
	publicURL := os.Getenv("RS_PUBLIC_URL")
	if publicURL == "" {
		publicURL = "http://" + listen
	}
	if issuer == "" || audience == "" || id == "" || secret == "" {
		return fmt.Errorf("set MANDATE_ISSUER, RS_AUDIENCE, RS_CLIENT_ID and RS_CLIENT_SECRET")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Wrong credentials are a configuration error, not an outage: Discover
	// fails with them at start, and if they stop working later (the secret
	// was rotated in Mandate's config) the API stops with the reason rather
	// than answer 503 for ever.
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	md := verifier.ResourceMetadata{Resource: audience, AuthorizationServers: []string{issuer},
		ScopesSupported: []string{"db:read:orders", "db:write:orders"}, ResourceName: "Orders API"}
	v, err := verifier.Discover(ctx, verifier.Config{
		Issuer: issuer, Audience: audience, ClientID: id, ClientSecret: secret,
		Realm: "orders", ResourceMetadataURL: md.URL(), PublicURL: publicURL,
		OnSync: func(err error) {
			switch {
			case errors.Is(err, verifier.ErrFeedCredentials):
				fail(err)
			case err != nil:
				log.Warn("revocation feed", "error", err) // after MaxStaleness, requests get 503
			}
		},
	})
	if err != nil {
		return fmt.Errorf("cannot follow Mandate at %s as %q: %w", issuer, id, err)
	}
	defer v.Close()

	srv := &http.Server{Addr: listen, Handler: newAPI(v, md), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 32 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("orders API listening", "addr", listen, "issuer", issuer, "audience", audience)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, verifier.ErrFeedCredentials) {
		return fmt.Errorf("the issuer no longer accepts %q's credentials: %w", id, cause)
	}
	return nil
}

// newAPI wires the routes: the metadata document is public; every other route
// first verifies the token (v.Middleware), then demands its scope.
func newAPI(v *verifier.Verifier, md verifier.ResourceMetadata) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+verifier.ResourceMetadataPath(md.Resource), md.Handler())
	protect := func(scope string, h http.HandlerFunc) http.Handler {
		return v.Middleware(v.RequireScope(scope)(h))
	}
	mux.Handle("GET /orders", protect("db:read:orders", listOrders))
	mux.Handle("POST /orders", protect("db:write:orders", createOrder))
	return mux
}

func listOrders(w http.ResponseWriter, r *http.Request) {
	c, _ := verifier.FromContext(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{
		"orders": []map[string]any{{"id": 1042, "total": 99.5}},
		// Who is calling, for whom, through which agents: the audit line an API
		// can now write for every call.
		"caller": map[string]any{"holder": c.Holder, "subject": c.Subject,
			"via": strings.Join(c.Actors, " ← "), "task": c.Root, "depth": c.Depth},
	})
}

func createOrder(w http.ResponseWriter, r *http.Request) {
	c, _ := verifier.FromContext(r.Context())
	writeJSON(w, http.StatusCreated, map[string]any{"created": true, "by": c.Holder, "for": c.Subject})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
