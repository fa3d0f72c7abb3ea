package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

// gcInterval is how often expired records are collected.
const gcInterval = time.Minute

// server is a running Mandate: store, keys, core and HTTP listener wired together.
type server struct {
	URL    string // the issuer URL
	Addr   string // the bound listen address
	DB     *bolt.DB
	Keys   *tokens.KeyRing
	Svc    *delegation.Service
	Policy *policy.Engine // nil without policy.dir

	http     *http.Server
	stop     context.CancelFunc
	done     chan struct{} // closed when the serve loop returns
	gcDone   chan struct{} // closed when the GC loop returns
	serveErr error         // the serve loop's error, readable after done
}

// startServer opens the store, loads or creates the signing key, and starts
// serving on cfg.Listen. When cfg.Issuer is empty the issuer is derived from the
// bound address (http://127.0.0.1:PORT), which is what tests and the demo use
// with port 0.
func startServer(cfg *Config, log *slog.Logger, now func() time.Time) (*server, error) {
	if now == nil {
		now = time.Now
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s, err := newServer(cfg, ln, log, now)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

func newServer(cfg *Config, ln net.Listener, log *slog.Logger, now func() time.Time) (*server, error) {
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}
	db, err := bolt.Open(cfg.DataDir, bolt.Options{Retention: cfg.Tokens.Retention, AuditRetention: cfg.Audit.Retention, RevocationGrace: delegation.FeedGrace})
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	fail := func(err error) (*server, error) {
		stop()
		db.Close()
		return nil, err
	}
	var ks tokens.KeyStore = db
	kek, err := cfg.Signing.kek()
	if err != nil {
		return fail(err)
	}
	var sealed *tokens.SealedKeyStore
	if kek != nil {
		if sealed, err = tokens.NewSealedKeyStore(db, kek); err != nil {
			return fail(err)
		}
		ks = sealed
	}
	keys, err := tokens.OpenKeyRing(ctx, ks, tokens.KeyRingOptions{
		Alg: cfg.Signing.Alg, Overlap: cfg.Tokens.RootTTL + delegation.FeedGrace, Now: now})
	if errors.Is(err, tokens.ErrKeySealed) {
		return fail(fmt.Errorf("%w: set MANDATE_SIGNING_KEK or signing.kek_file to the key-encryption key this data directory was sealed with", err))
	}
	if err != nil {
		return fail(err)
	}
	if sealed != nil && len(sealed.Unsealed()) > 0 {
		log.Warn("signing keys made before signing.kek was set are stored in clear and stay so; keys made from now on are sealed (mandate keys rotate makes one now)",
			slog.Any("kids", sealed.Unsealed()))
	}
	sc, err := cfg.serviceConfig()
	if err != nil {
		return fail(err)
	}
	sc.Issuer, sc.Logger, sc.Now, sc.KeyStore = issuer, log, now, ks
	var engine *policy.Engine
	if cfg.Policy.Dir != "" {
		if engine, err = policy.NewEngine(cfg.Policy.Dir, log); err != nil {
			return fail(fmt.Errorf("config: policy.dir: %w", err))
		}
		sc.Policy = engine
		if err := engine.Watch(ctx, nil); err != nil {
			log.Warn("policy files are not watched; reload with SIGHUP", slog.String("error", err.Error()))
		}
	}
	svc, err := delegation.New(sc, keys, db)
	if err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	if engine != nil {
		dir := cfg.Policy.Dir
		engine.OnReload(func(n int, err error) { svc.AuditPolicyReload(context.Background(), dir, n, err) })
	}
	m := newMetrics(db, svc, now)
	e := httpapi.New(svc, httpapi.Options{JWKS: keys.JWKS, Ready: db.Ping, Logger: log, Now: now, Observe: m.observe,
		RateLimit: httpapi.RateLimit{PerSecond: cfg.RateLimit.PerSecond, Burst: cfg.RateLimit.Burst}})
	e.GET(PathMetrics, echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})))
	s := &server{
		URL: issuer, Addr: ln.Addr().String(), DB: db, Keys: keys, Svc: svc, Policy: engine, stop: stop,
		http: &http.Server{
			Handler:           e,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    httpapi.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}), gcDone: make(chan struct{}),
	}
	s.http.RegisterOnShutdown(svc.Close) // release revocation-feed long polls
	go func() {
		defer close(s.gcDone)
		db.RunGC(ctx, gcInterval, now, func(r bolt.GCResult, err error) {
			if err != nil {
				log.Error("garbage collection failed", slog.String("error", err.Error()))
			} else if r.Tokens+r.Revocations > 0 {
				log.Info("expired records collected", slog.Int("tokens", r.Tokens), slog.Int("revocations", r.Revocations))
			}
		})
	}()
	go func() {
		s.serveErr = s.http.Serve(ln)
		close(s.done)
	}()
	log.Info("mandate serving", slog.String("issuer", issuer), slog.String("listen", s.Addr),
		slog.String("data", db.Path()), slog.String("kid", keys.CurrentKeyID()), slog.String("alg", keys.CurrentAlg()))
	return s, nil
}

// Shutdown stops accepting requests, lets in-flight ones finish (until ctx
// ends), stops garbage collection and closes the store.
func (s *server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.stop()
	<-s.gcDone
	<-s.done
	if serr := s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if cerr := s.DB.Close(); err == nil {
		err = cerr
	}
	return err
}

// Done is closed when the serve loop stops, on Shutdown or because the listener
// failed; Err then says why.
func (s *server) Done() <-chan struct{} { return s.done }

// Err is the serve loop's error once Done is closed.
func (s *server) Err() error {
	<-s.done
	return s.serveErr
}
