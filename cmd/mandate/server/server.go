package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/store/postgres"
	"github.com/mandate-auth/mandate/tokens"
)

// Options is what a running Mandate needs beyond its configuration: things
// a test or an embedding program chooses, never an operator's file.
type Options struct {
	// Logger receives the server's logs (discarded when nil).
	Logger *slog.Logger
	// Now is the clock of the core, the keys and the rate limits (time.Now
	// when nil); tests pass a clock they control.
	Now func() time.Time
	// Listener, when set, is served instead of listening on cfg.Listen: a
	// caller that must know the address first (a test, the demo) binds
	// 127.0.0.1:0 itself. An empty cfg.Issuer is derived from the address.
	Listener net.Listener
	// FeedPageSize bounds one revocation-feed answer (the core's default when 0).
	FeedPageSize int
	// ProofsPerClient bounds each client's share of the DPoP replay cache
	// (the core's default when 0).
	ProofsPerClient int
	// GCInterval is how often expired records are collected (GCInterval
	// when 0; negative turns the loop off, for tests that collect by hand).
	GCInterval time.Duration
}

// Store is the storage backend a server runs on: what the core persists
// through and the operator commands read, the signing keys, collection and
// readiness. store/bolt (the embedded default, one process) and
// store/postgres (several replicas on one database) are its two
// implementations; the server picks one by its configuration.
type Store interface {
	delegation.Store
	delegation.Inspector
	tokens.KeyStore
	store.Collector
	store.SingleUse
	// RunGC collects expired records every interval until ctx ends,
	// reporting each pass to report (see store.RunGC).
	RunGC(ctx context.Context, interval time.Duration, now func() time.Time, report func(store.GCResult, error))
	// Ping reports whether the store answers, for /readyz.
	Ping() error
	io.Closer
}

// Both backends are complete stores.
var (
	_ Store           = (*bolt.DB)(nil)
	_ Store           = (*postgres.DB)(nil)
	_ tokens.KeyStore = (*tokens.SealedKeyStore)(nil)
)

// GCInterval is how often a running server collects expired records.
const GCInterval = time.Minute

// Server is a running Mandate: store, keys, core and HTTP listener wired
// together by Start.
type Server struct {
	URL   string // the issuer URL
	Addr  string // the bound listen address
	Store Store  // a *bolt.DB or a *postgres.DB
	// StoreName says where the records are, for people: the bbolt file's
	// path, or the PostgreSQL database (never its password) and replica.
	StoreName string
	Keys      *tokens.KeyRing
	// KeyStore is where rotated keys go: the store, or a sealing layer over
	// it when a KEK is configured.
	KeyStore tokens.KeyStore
	Service  *delegation.Service
	Policy   *policy.Engine // nil without policy.dir
	Handler  http.Handler   // every endpoint, /metrics included

	http   *http.Server
	stop   context.CancelFunc
	done   chan struct{} // closed when the serve loop returns
	gcDone chan struct{} // closed when the GC loop returns
	// followDone is closed when the loop re-reading what other replicas
	// changed (keys, suspensions) returns: at once on bbolt.
	followDone <-chan struct{}
	serveErr   error // the serve loop's error, readable after done
}

// Start validates cfg, opens the store, loads or creates the signing key
// (sealed under the KEK when one is set), loads and watches the policy
// directory, builds the core and its transport with metrics, and starts
// serving. Everything that serves Mandate starts here.
func Start(cfg *Config, opts Options) (*Server, error) {
	if _, err := cfg.Validate(""); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
	}
	s, err := start(cfg, ln, opts)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return s, nil
}

func start(cfg *Config, ln net.Listener, opts Options) (*Server, error) {
	log, now := opts.Logger, opts.Now
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}
	db, storeName, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	fail := func(err error) (*Server, error) {
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
		// Keys made before the KEK was configured are sealed now: no private
		// key rests in clear in a data file once a KEK exists.
		if done, err := sealed.Reseal(ctx); err != nil {
			return fail(fmt.Errorf("seal signing keys stored in clear: %w", err))
		} else if len(done) > 0 {
			log.Warn("signing keys stored in clear are now sealed under signing.kek", slog.Any("kids", done))
		}
	}
	keys, err := tokens.OpenKeyRing(ctx, ks, tokens.KeyRingOptions{
		Alg: cfg.Signing.Alg, Overlap: KeyOverlap(cfg.Tokens.RootTTL), Now: now})
	if errors.Is(err, tokens.ErrKeySealed) {
		return fail(fmt.Errorf("%w: set MANDATE_SIGNING_KEK or signing.kek_file to the key-encryption key this data directory was sealed with", err))
	}
	if err != nil {
		return fail(err)
	}
	sc, err := cfg.serviceConfig()
	if err != nil {
		return fail(err)
	}
	sc.Issuer, sc.Logger, sc.Now, sc.KeyStore, sc.FeedPageSize, sc.ProofsPerClient = issuer, log, now, ks, opts.FeedPageSize, opts.ProofsPerClient
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
	proxies, err := cfg.HTTP.trustedProxies()
	if err != nil {
		return fail(err)
	}
	followDone := closedChan
	if pg, ok := db.(*postgres.DB); ok {
		followDone = followReplicas(ctx, pg, svc, log)
	}
	m := newMetrics(db, svc, now)
	e := httpapi.New(svc, httpapi.Options{JWKS: keys.JWKS, Ready: db.Ping, Logger: log, Now: now, Observe: m.observe,
		RateLimit: httpapi.RateLimit{PerSecond: cfg.RateLimit.PerSecond, Burst: cfg.RateLimit.Burst,
			RevocationPerSecond: cfg.RateLimit.RevocationPerSecond, RevocationBurst: cfg.RateLimit.RevocationBurst},
		TrustedProxies: proxies})
	e.GET(PathMetrics, echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})))
	s := &Server{
		URL: issuer, Addr: ln.Addr().String(), Store: db, StoreName: storeName, Keys: keys, KeyStore: ks, Service: svc, Policy: engine, Handler: e, stop: stop,
		http: &http.Server{
			Handler:           e,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    httpapi.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}), gcDone: make(chan struct{}), followDone: followDone,
	}
	s.http.RegisterOnShutdown(svc.Close) // release revocation-feed long polls
	interval := opts.GCInterval
	if interval == 0 {
		interval = GCInterval
	}
	go func() {
		defer close(s.gcDone)
		if interval < 0 {
			<-ctx.Done()
			return
		}
		go func() { // counted refusals are written once their window closes
			t := time.NewTicker(delegation.RefusalWindow / 4)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					svc.FlushRefusals(ctx, false)
				}
			}
		}()
		db.RunGC(ctx, interval, now, func(r store.GCResult, err error) {
			if err != nil {
				log.Error("garbage collection failed", slog.String("error", err.Error()))
			} else if r.Tokens+r.Revocations > 0 {
				log.Info("expired records collected", slog.Int("tokens", r.Tokens), slog.Int("revocations", r.Revocations))
			}
			// Retired keys lose their private part once they leave the JWKS.
			if kids, err := keys.Prune(ctx, ks); err != nil {
				log.Error("destroying retired signing keys failed", slog.String("error", err.Error()))
			} else if len(kids) > 0 {
				log.Info("retired signing keys destroyed", slog.Any("kids", kids))
			}
		})
	}()
	go func() {
		s.serveErr = s.http.Serve(ln)
		close(s.done)
	}()
	log.Info("mandate serving", slog.String("issuer", issuer), slog.String("listen", s.Addr),
		slog.String("store", storeName), slog.String("kid", keys.CurrentKeyID()), slog.String("alg", keys.CurrentAlg()))
	return s, nil
}

// closedChan is a channel already closed: a loop that never ran is done.
var closedChan = func() <-chan struct{} { c := make(chan struct{}); close(c); return c }()

// followReplicas keeps a replica on PostgreSQL in step with the others: its
// store's listener wakes the feed's long polls at every revocation any
// replica commits (and whenever notifications may have been lost), and the
// key ring and the suspensions are read again when a notification says
// they changed and every SyncInterval, until ctx ends; the channel it
// returns is closed when that loop has returned.
func followReplicas(ctx context.Context, pg *postgres.DB, svc *delegation.Service, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	keys, suspensions := make(chan struct{}, 1), make(chan struct{}, 1)
	mark := func(ch chan struct{}) func() {
		return func() {
			select {
			case ch <- struct{}{}:
			default: // a reading is due already
			}
		}
	}
	down := false
	pg.Listen(ctx, postgres.Events{
		Revocations: svc.RevocationsChanged,
		SigningKeys: mark(keys),
		Suspensions: mark(suspensions),
		Connection: func(up bool, err error) { // one goroutine calls it
			switch {
			case up:
				log.Info("following the other replicas (PostgreSQL notifications)")
				down = false
			case !down: // once per outage, not at every attempt to reconnect
				log.Warn("lost the PostgreSQL notification connection; reconnecting, then reading everything again", slog.String("error", err.Error()))
				down = true
			}
		},
	})
	go func() {
		defer close(done)
		t := time.NewTicker(SyncInterval)
		defer t.Stop()
		failing := false
		for {
			var err error
			select {
			case <-ctx.Done():
				return
			case <-keys:
				err = svc.SyncKeys(ctx)
			case <-suspensions:
				err = svc.SyncSuspensions(ctx)
			case <-t.C:
				err = errors.Join(svc.SyncKeys(ctx), svc.SyncSuspensions(ctx))
			}
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				log.Warn("could not read what other replicas changed; retrying", slog.String("error", err.Error()))
				failing = true
			case err == nil && failing:
				log.Info("in step with the other replicas again")
				failing = false
			}
		}
	}()
	return done
}

// StoreOpenTimeout bounds connecting to PostgreSQL and migrating its schema
// at start (a replica may wait on another's migration).
const StoreOpenTimeout = time.Minute

// openStore opens the store cfg names: PostgreSQL when store.postgres is
// set, else the bbolt file in data_dir. It also says, for people, where the
// records are (never a password).
func openStore(cfg *Config) (Store, string, error) {
	if !cfg.Store.Postgres.Enabled() {
		db, err := bolt.Open(cfg.DataDir, bolt.Options{Retention: cfg.Tokens.Retention, AuditRetention: cfg.Audit.Retention, RevocationGrace: RevocationGrace})
		if err != nil {
			return nil, "", err
		}
		return db, db.Path(), nil
	}
	dsn, err := cfg.Store.Postgres.ReadDSN()
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), StoreOpenTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, dsn, postgres.Options{Replica: cfg.Store.Postgres.Replica,
		Retention: cfg.Tokens.Retention, AuditRetention: cfg.Audit.Retention, RevocationGrace: RevocationGrace})
	if err != nil {
		return nil, "", fmt.Errorf("store.postgres: %w", err) // the store's errors never repeat the DSN
	}
	return db, fmt.Sprintf("%s, replica %q", db.Describe(), db.Replica()), nil
}

// Shutdown stops accepting requests, lets in-flight ones finish (until ctx
// ends), stops garbage collection, writes the counted refusals and closes
// the store.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.stop()
	<-s.gcDone
	<-s.followDone // no reading of the store after it closes
	<-s.done
	s.Service.FlushRefusals(context.Background(), true) // every counted refusal, before the store closes
	if serr := s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if cerr := s.Store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Done is closed when the serve loop stops, on Shutdown or because the listener
// failed; Err then says why.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is the serve loop's error once Done is closed.
func (s *Server) Err() error {
	<-s.done
	return s.serveErr
}
