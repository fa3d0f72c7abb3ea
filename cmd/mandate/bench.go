package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// benchOptions configures one load run.
type benchOptions struct {
	server      string // empty: start an embedded server
	client      string // id:secret of an agent with both grants
	actor       string // id:secret of a second agent (the exchanges' new holder)
	rs          string // id:secret of a resource_server (introspection)
	op          string
	depth       int
	concurrency int
	rate        int
	duration    time.Duration
	warmup      time.Duration
	alg         string
	bcryptCost  int
	cpuProfile  string // write a CPU profile of the measured phase (this process: the embedded server and the generator)
}

func newBenchCmd() *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Drive load at a Mandate server and report throughput, latency percentiles, errors and RSS",
		Long: `Drive one kind of request at a Mandate server, at a fixed concurrency (closed
loop) or a fixed offered rate (open loop, latency measured from the scheduled
send time so a slow server cannot hide its queue), and print throughput,
p50/p90/p99/max latency, errors by OAuth code and the server's RSS (from its
/metrics). It also measures, in the same run, one signature plus one
verification with the server's algorithm: the crypto bound every figure can
be read against.

Without --server it starts an embedded server on a temporary data directory
(durable writes, bcrypt secrets, rate limits off) and tears it down after.
Against a live server, give --client, --actor and --rs as id:secret (two
agents with both grants that can delegate to each other, and a
resource_server), with rate_limit off or high enough on the server.

Operations: mint (client_credentials), exchange (delegation to --actor at
--depth: one subject and one actor token, presented again and again as an
orchestrator spawning sub-agents from one task does), introspect (of a pool
of 64 tokens), revoke (of a freshly minted root: only the revocation is
timed, but the mint counts against the closed loop's throughput).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "Mandate's issuer URL (empty: an embedded server)")
	f.StringVar(&o.client, "client", "", "id:secret of the agent that mints and exchanges (live server)")
	f.StringVar(&o.actor, "actor", "", "id:secret of the agent exchanges delegate to (live server)")
	f.StringVar(&o.rs, "rs", "", "id:secret of a resource_server client, for introspect (live server)")
	f.StringVar(&o.op, "op", "exchange", "mint, exchange, introspect or revoke")
	f.IntVar(&o.depth, "depth", 1, "depth of the tokens exchanges issue (1: a child of a root)")
	f.IntVar(&o.concurrency, "concurrency", 32, "requests in flight (closed loop); ignored with --rate")
	f.IntVar(&o.rate, "rate", 0, "offered requests per second (open loop); 0: closed loop")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	f.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring (not counted)")
	f.StringVar(&o.alg, "alg", tokens.AlgEdDSA, "the embedded server's signing algorithm")
	f.IntVar(&o.bcryptCost, "bcrypt-cost", bcrypt.DefaultCost, "bcrypt cost of the embedded server's client secrets")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase to this file (go tool pprof)")
	return cmd
}

// benchCred is a client's id and secret.
type benchCred struct{ id, secret string }

func parseCred(flag, s string) (benchCred, error) {
	id, secret, ok := strings.Cut(s, ":")
	if !ok || id == "" || secret == "" {
		return benchCred{}, fmt.Errorf("--%s must be id:secret", flag)
	}
	return benchCred{id, secret}, nil
}

// benchTarget is the server under load and the credentials to use.
type benchTarget struct {
	base              string
	client, actor, rs benchCred
	hc                *http.Client
}

func runBench(ctx context.Context, out io.Writer, o benchOptions) error {
	switch o.op {
	case "mint", "exchange", "introspect", "revoke":
	default:
		return fmt.Errorf("--op must be mint, exchange, introspect or revoke, not %q", o.op)
	}
	if o.depth < 1 || o.concurrency < 1 || o.rate < 0 || o.duration <= 0 || o.warmup < 0 {
		return errors.New("--depth and --concurrency must be at least 1; --rate, --duration and --warmup not negative")
	}
	inflight := o.concurrency
	if o.rate > 0 {
		inflight = max(64, o.rate/10) // an open loop may queue; the bound only stops runaway goroutines
	}
	t := &benchTarget{hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inflight, MaxConnsPerHost: inflight}, Timeout: 30 * time.Second}}
	if o.server == "" {
		stop, err := t.embedded(o)
		if err != nil {
			return err
		}
		defer stop()
	} else {
		var err error
		t.base = strings.TrimSuffix(o.server, "/")
		if t.client, err = parseCred("client", o.client); err != nil {
			return err
		}
		if o.op == "exchange" {
			if t.actor, err = parseCred("actor", o.actor); err != nil {
				return err
			}
		}
		if o.op == "introspect" {
			if t.rs, err = parseCred("rs", o.rs); err != nil {
				return err
			}
		}
	}
	op, err := t.prepare(ctx, o)
	if err != nil {
		return fmt.Errorf("bench setup: %w", err)
	}
	fmt.Fprintf(out, "mandate bench: %s", o.op)
	if o.op == "exchange" {
		fmt.Fprintf(out, " at depth %d", o.depth)
	}
	if o.rate > 0 {
		fmt.Fprintf(out, ", %d/s offered", o.rate)
	} else {
		fmt.Fprintf(out, ", %d in flight", o.concurrency)
	}
	where := t.base
	if o.server == "" {
		where += " (embedded, durable bbolt, bcrypt cost " + strconv.Itoa(o.bcryptCost) + ")"
	}
	fmt.Fprintf(out, ", %s after %s warm-up, against %s; %d CPUs, %s\n", o.duration, o.warmup, where, runtime.NumCPU(), runtime.Version())

	if o.warmup > 0 {
		drive(ctx, op, o, o.warmup)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	res := drive(ctx, op, o, o.duration)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	res.print(out, o.duration)
	if m, err := t.serverMetrics(); err == nil {
		fmt.Fprintf(out, "server RSS   %.1f MB (process_resident_memory_bytes)", m["process_resident_memory_bytes"]/(1<<20))
		if o.server == "" {
			// Embedded: this process is the server (and the generator). Split
			// the heap from the data file's pages the kernel maps in, which
			// are clean and reclaimable.
			if anon, file, ok := rssSplit(); ok {
				fmt.Fprintf(out, ": %.1f MB anonymous (heap, stacks; the generator's included), %.1f MB of mapped data file", anon/(1<<20), file/(1<<20))
			}
		}
		fmt.Fprintln(out)
		if live, records := m["mandate_token_records"], m["mandate_audit_records"]; live > 0 && records > 0 {
			fmt.Fprintf(out, "store        %.1f MB: %.0f token records at %.0f bytes each (record and indexes), %.0f audit records at %.0f bytes each\n",
				m["mandate_store_file_bytes"]/(1<<20), live, m["mandate_store_token_bytes"]/live, records, m["mandate_store_audit_bytes"]/records)
		}
	} else {
		fmt.Fprintf(out, "server RSS   unknown (%v)\n", err)
	}
	bound := cryptoBound(o.alg)
	perCore := float64(time.Second) / float64(bound)
	fmt.Fprintf(out, "crypto bound %s sign + verify %s per token → %.0f/s per core, %.0f/s on %d CPUs\n",
		o.alg, bound.Round(100*time.Nanosecond), perCore, perCore*float64(runtime.NumCPU()), runtime.NumCPU())
	if res.ok > 0 {
		tput := float64(res.ok) / o.duration.Seconds()
		fmt.Fprintf(out, "             this run: %.0f/s = %.0f%% of the all-CPU bound (load generator included)\n",
			tput, 100*tput/(perCore*float64(runtime.NumCPU())))
	}
	return nil
}

// embedded starts a throw-away server for the run.
func (t *benchTarget) embedded(o benchOptions) (func(), error) {
	dir, err := os.MkdirTemp("", "mandate-bench-")
	if err != nil {
		return nil, err
	}
	cfg := &server.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Signing: server.SigningConfig{Alg: o.alg},
		Tokens: server.TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: max(4, o.depth), Retention: time.Hour},
		Audit:  server.AuditConfig{Retention: 24 * time.Hour},
	}
	for i, id := range []string{"bench-agent", "bench-actor", "bench-rs"} {
		secret, err := randomSecret()
		if err != nil {
			return nil, err
		}
		h, err := bcrypt.GenerateFromPassword([]byte(secret), o.bcryptCost)
		if err != nil {
			return nil, err
		}
		cc := server.ClientConfig{ID: id, SecretHash: string(h)}
		if i < 2 {
			cc.Grants, cc.Scopes, cc.Audiences = []string{"client_credentials", "token_exchange"}, []string{"bench:*"}, []string{"https://bench.example"}
		} else {
			cc.Role = "resource_server"
		}
		cfg.Clients = append(cfg.Clients, cc)
		*[]*benchCred{&t.client, &t.actor, &t.rs}[i] = benchCred{id, secret}
	}
	if _, err := cfg.Validate(""); err != nil {
		return nil, err
	}
	srv, err := server.Start(cfg, server.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	t.base = srv.URL
	return func() {
		srv.Shutdown(context.Background())
		os.RemoveAll(dir)
	}, nil
}

// benchOp is one measured request; it returns the OAuth error code of a
// refusal ("" on success), and, when part of its work is preparation that
// must not be timed, the moment the measured request started (zero: all of
// it is measured).
type benchOp func(ctx context.Context) (code string, measuredFrom time.Time, err error)

// prepare builds what the operation needs (a subject chain, actor tokens,
// tokens to introspect) and returns the operation.
func (t *benchTarget) prepare(ctx context.Context, o benchOptions) (benchOp, error) {
	mint := func(c benchCred) (string, error) {
		r, err := t.post(ctx, "/oauth2/token", c, url.Values{"grant_type": {oauth.GrantClientCredentials}})
		if err != nil {
			return "", err
		}
		return r.token()
	}
	switch o.op {
	case "mint":
		return func(ctx context.Context) (string, time.Time, error) {
			r, err := t.post(ctx, "/oauth2/token", t.client, url.Values{"grant_type": {oauth.GrantClientCredentials}})
			return r.code, time.Time{}, err
		}, nil
	case "exchange":
		// A subject at depth-1, held by the client, and the actor's identity
		// token: each exchange issues a new token at depth for the actor.
		subject, err := mint(t.client)
		if err != nil {
			return nil, err
		}
		for d := 1; d < o.depth; d++ {
			r, err := t.post(ctx, "/oauth2/token", t.client, url.Values{"grant_type": {oauth.GrantTokenExchange},
				"subject_token": {subject}, "subject_token_type": {oauth.TokenTypeAccessToken}})
			if err != nil {
				return nil, err
			}
			if subject, err = r.token(); err != nil {
				return nil, err
			}
		}
		issuer, err := t.issuer(ctx)
		if err != nil {
			return nil, err
		}
		// The actor's identity token lives a few minutes: it is renewed
		// (outside the measured request) before it runs out.
		var (
			mu       sync.Mutex
			actor    string
			renewAt  time.Time
			identity = func() (string, error) {
				r, err := t.post(ctx, "/oauth2/token", t.actor, url.Values{"grant_type": {oauth.GrantClientCredentials}, "audience": {issuer}})
				if err != nil {
					return "", err
				}
				return r.token()
			}
		)
		return func(ctx context.Context) (string, time.Time, error) {
			mu.Lock()
			if time.Now().After(renewAt) {
				a, err := identity()
				if err != nil {
					mu.Unlock()
					return "", time.Time{}, err
				}
				actor, renewAt = a, time.Now().Add(3*time.Minute)
			}
			form := url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {subject}, "subject_token_type": {oauth.TokenTypeAccessToken},
				"actor_token": {actor}, "actor_token_type": {oauth.TokenTypeAccessToken}}
			mu.Unlock()
			start := time.Now()
			r, err := t.post(ctx, "/oauth2/token", t.client, form)
			return r.code, start, err
		}, nil
	case "introspect":
		pool := make([]string, 64)
		for i := range pool {
			var err error
			if pool[i], err = mint(t.client); err != nil {
				return nil, err
			}
		}
		var n atomic.Uint64
		return func(ctx context.Context) (string, time.Time, error) {
			tok := pool[n.Add(1)%uint64(len(pool))]
			r, err := t.post(ctx, "/oauth2/introspect", t.rs, url.Values{"token": {tok}})
			if err == nil && r.code == "" && r.body["active"] != true {
				return "inactive", time.Time{}, nil
			}
			return r.code, time.Time{}, err
		}, nil
	case "revoke":
		return func(ctx context.Context) (string, time.Time, error) {
			tok, err := mint(t.client) // preparation: not timed
			if err != nil {
				return "", time.Time{}, err
			}
			start := time.Now()
			r, err := t.post(ctx, "/oauth2/revoke", t.client, url.Values{"token": {tok}})
			return r.code, start, err
		}, nil
	}
	return nil, fmt.Errorf("unknown op %q", o.op)
}

// benchReply is a decoded answer: the OAuth code of a refusal, or the body.
type benchReply struct {
	code string
	body map[string]any
}

func (r benchReply) token() (string, error) {
	tok, _ := r.body["access_token"].(string)
	if r.code != "" || tok == "" {
		return "", fmt.Errorf("no token (%s)", r.code)
	}
	return tok, nil
}

// issuer reads the server's issuer from its RFC 8414 metadata (an identity
// token's audience must be it exactly).
func (t *benchTarget) issuer(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return "", err
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var md struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil || md.Issuer == "" {
		return "", fmt.Errorf("metadata of %s: no issuer (%v)", t.base, err)
	}
	return md.Issuer, nil
}

func (t *benchTarget) post(ctx context.Context, path string, c benchCred, form url.Values) (benchReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return benchReply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := t.hc.Do(req)
	if err != nil {
		return benchReply{}, err
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(raw, &body)
	if resp.StatusCode != http.StatusOK {
		code, _ := body["error"].(string)
		if code == "" {
			code = "HTTP " + strconv.Itoa(resp.StatusCode)
		}
		return benchReply{code: code, body: body}, nil
	}
	return benchReply{body: body}, nil
}

// serverMetrics reads the unlabelled gauges of the server's /metrics.
func (t *benchTarget) serverMetrics() (map[string]float64, error) {
	resp, err := t.hc.Get(t.base + server.PathMetrics)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	m := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[name] = f
		}
	}
	if _, ok := m["process_resident_memory_bytes"]; !ok {
		return nil, errors.New("no process_resident_memory_bytes in /metrics")
	}
	return m, nil
}

// rssSplit reads RssAnon and RssFile (bytes) from /proc/self/status (Linux).
func rssSplit() (anon, file float64, ok bool) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, v, found := strings.Cut(line, ":")
		if !found || (name != "RssAnon" && name != "RssFile") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			continue
		}
		if name == "RssAnon" {
			anon = kb * 1024
		} else {
			file = kb * 1024
		}
	}
	return anon, file, anon > 0
}

// benchResult is what one measured phase saw.
type benchResult struct {
	ok        int
	latencies []time.Duration
	errors    map[string]int
}

// drive runs op for d, closed loop (o.concurrency workers) or open loop
// (o.rate per second, latency from each request's scheduled time).
func drive(ctx context.Context, op benchOp, o benchOptions, d time.Duration) benchResult {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	var (
		mu  sync.Mutex
		res = benchResult{errors: map[string]int{}}
	)
	record := func(lat []time.Duration, errs map[string]int, ok int) {
		mu.Lock()
		defer mu.Unlock()
		res.ok += ok
		res.latencies = append(res.latencies, lat...)
		for k, v := range errs {
			res.errors[k] += v
		}
	}
	one := func(start time.Time, lat *[]time.Duration, errs map[string]int) bool {
		code, from, err := op(ctx)
		if !from.IsZero() && from.After(start) {
			start = from
		}
		switch {
		case err != nil:
			errs["transport: "+errorClass(err)]++
		case code != "":
			errs[code]++
		default:
			*lat = append(*lat, time.Since(start))
			return true
		}
		return false
	}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	if o.rate == 0 {
		for range o.concurrency {
			wg.Go(func() {
				lat, errs, ok := make([]time.Duration, 0, 4096), map[string]int{}, 0
				for time.Now().Before(end) {
					if one(time.Now(), &lat, errs) {
						ok++
					}
				}
				record(lat, errs, ok)
			})
		}
		wg.Wait()
		return res
	}
	interval := time.Second / time.Duration(o.rate)
	sem := make(chan struct{}, max(64, o.rate/10))
	next := time.Now()
	for next.Before(end) {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		scheduled := next
		next = next.Add(interval)
		select {
		case sem <- struct{}{}:
		default:
			record(nil, map[string]int{"dropped: generator saturated": 1}, 0)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var lat []time.Duration
			errs := map[string]int{}
			ok := 0
			if one(scheduled, &lat, errs) {
				ok = 1
			}
			record(lat, errs, ok)
		})
	}
	wg.Wait()
	return res
}

func errorClass(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// print writes throughput, percentiles and errors.
func (r benchResult) print(out io.Writer, d time.Duration) {
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
	}
	total := r.ok
	for _, n := range r.errors {
		total += n
	}
	fmt.Fprintf(out, "requests     %d (%d ok) in %s\n", total, r.ok, d)
	fmt.Fprintf(out, "throughput   %.0f ok/s\n", float64(r.ok)/d.Seconds())
	if len(r.latencies) > 0 {
		fmt.Fprintf(out, "latency      p50 %s  p90 %s  p99 %s  max %s\n", round(pct(.50)), round(pct(.90)), round(pct(.99)), round(r.latencies[len(r.latencies)-1]))
	}
	if len(r.errors) == 0 {
		fmt.Fprintln(out, "errors       none")
		return
	}
	codes := make([]string, 0, len(r.errors))
	for c := range r.errors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s %d", c, r.errors[c])
	}
	fmt.Fprintf(out, "errors       %s\n", strings.Join(parts, ", "))
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// cryptoBound measures one token signature plus one verification with alg,
// as Mandate does them (a KeyRing over a throw-away key), median of runs.
func cryptoBound(alg string) time.Duration {
	k, err := tokens.GenerateKey(alg, time.Now())
	if err != nil {
		return 0
	}
	ks := &tokens.MemoryKeyStore{}
	if err := ks.AddSigningKey(context.Background(), k); err != nil {
		return 0
	}
	ring, err := tokens.OpenKeyRing(context.Background(), ks, tokens.KeyRingOptions{Alg: alg, Overlap: time.Hour})
	if err != nil {
		return 0
	}
	c := &jwt.Claims{Issuer: "https://bench.example", Subject: "a", ClientID: "a", Scope: "bench:x",
		IssuedAt: jwt.At(time.Now()), NotBefore: jwt.At(time.Now()), Expiry: jwt.At(time.Now().Add(time.Hour)), ID: "bench", Lineage: []string{}}
	runs := make([]time.Duration, 7) // of 50 ms each; the median is reported
	for i := range runs {
		start, n := time.Now(), 0
		for time.Since(start) < 50*time.Millisecond {
			tok, err := ring.Sign(c)
			if err != nil {
				return 0
			}
			if _, err := ring.Verify(tok); err != nil {
				return 0
			}
			n++
		}
		runs[i] = time.Since(start) / time.Duration(n)
	}
	slices.Sort(runs)
	return runs[len(runs)/2]
}
