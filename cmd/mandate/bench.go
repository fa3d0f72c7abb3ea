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
	format      string // text (the default) or json: one benchReport at the end
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
timed, but the mint counts against the closed loop's throughput).

--format json prints one object at the end (docs/operators.md), for
comparing runs in scripts.`,
		Args: cobra.NoArgs,
	}
	format := addFormatFlag(cmd, "text", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o.format = *format
		return runBench(cmd.Context(), cmd.OutOrStdout(), o)
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
	if o.server == "" {
		if err := checkBcryptCost("--bcrypt-cost", o.bcryptCost); err != nil {
			return err
		}
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
	rep := &benchReport{Op: o.op, Concurrency: o.concurrency, Rate: o.rate, Duration: o.duration, Warmup: o.warmup,
		Server: t.base, Embedded: o.server == "", CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if o.op == "exchange" {
		rep.Depth = o.depth
	}
	if o.rate > 0 {
		rep.Concurrency = 0
	}
	if rep.Embedded {
		rep.BcryptCost = o.bcryptCost
	}
	text := o.format != "json"
	if text { // at once: the run takes a while
		rep.printHeader(out)
	}

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
	res.fill(rep)
	if m, err := t.serverMetrics(); err == nil {
		rep.RSS = &benchRSS{Source: "process_resident_memory_bytes", Total: int64(m["process_resident_memory_bytes"])}
		if rep.Embedded {
			// Embedded: this process is the server (and the generator). The
			// kernel's one snapshot splits it exactly: VmRSS = RssAnon +
			// RssFile + RssShmem.
			if split, ok := rssSplit(); ok {
				rep.RSS = &split
			}
		}
		if live, records := m["mandate_token_records"], m["mandate_audit_records"]; live > 0 && records > 0 {
			rep.Store = &benchStore{FileBytes: int64(m["mandate_store_file_bytes"]), TokenRecords: int64(live), TokenBytesEach: m["mandate_store_token_bytes"] / live,
				AuditRecords: int64(records), AuditBytesEach: m["mandate_store_audit_bytes"] / records}
		}
	} else {
		rep.RSSUnknown = err.Error()
	}
	bound := cryptoBound(o.alg)
	rep.Crypto = benchCrypto{Alg: o.alg, PerToken: bound}
	if bound > 0 {
		rep.Crypto.PerCore = float64(time.Second) / float64(bound)
		rep.Crypto.AllCPUs = rep.Crypto.PerCore * float64(rep.CPUs)
		if rep.OK > 0 {
			rep.Crypto.RunShare = rep.Throughput / rep.Crypto.AllCPUs
		}
	}
	if !text {
		return renderJSON(out, rep)
	}
	rep.printResults(out)
	return nil
}

// benchReport is one run's report; its JSON field names are stable
// (docs/operators.md). Durations are in the JSON as seconds.
type benchReport struct {
	Op          string        `json:"op"`
	Depth       int           `json:"depth,omitempty"`       // exchange
	Concurrency int           `json:"concurrency,omitempty"` // closed loop
	Rate        int           `json:"rate,omitempty"`        // open loop: offered requests per second
	Duration    time.Duration `json:"-"`
	Warmup      time.Duration `json:"-"`
	Server      string        `json:"server"`
	Embedded    bool          `json:"embedded"`
	BcryptCost  int           `json:"bcrypt_cost,omitempty"` // embedded
	CPUs        int           `json:"cpus"`
	GoVersion   string        `json:"go_version"`

	Requests   int            `json:"requests"`
	OK         int            `json:"ok"`
	Throughput float64        `json:"throughput_per_second"` // ok per second
	Latency    *benchLatency  `json:"latency,omitempty"`     // of the ok requests
	Errors     map[string]int `json:"errors"`                // by OAuth code or transport class

	RSS        *benchRSS   `json:"rss,omitempty"`
	RSSUnknown string      `json:"rss_unknown,omitempty"` // why RSS is missing
	Store      *benchStore `json:"store,omitempty"`
	Crypto     benchCrypto `json:"crypto_bound"`
}

// benchLatency holds latency percentiles.
type benchLatency struct{ P50, P90, P99, Max time.Duration }

// benchRSS is the server's resident memory: a total, and for an embedded
// server (this process) its exact split.
type benchRSS struct {
	Source string `json:"source"` // process_resident_memory_bytes (/metrics) or /proc/self/status
	Total  int64  `json:"total_bytes"`
	Split  bool   `json:"split"`      // Anon + File + Shmem == Total
	Anon   int64  `json:"anon_bytes"` // heap, stacks (0 when not split)
	File   int64  `json:"file_bytes"` // the binary and the mapped data file
	Shmem  int64  `json:"shmem_bytes"`
}

// benchStore is the store's size from the server's gauges.
type benchStore struct {
	FileBytes      int64   `json:"file_bytes"`
	TokenRecords   int64   `json:"token_records"`
	TokenBytesEach float64 `json:"token_bytes_each"`
	AuditRecords   int64   `json:"audit_records"`
	AuditBytesEach float64 `json:"audit_bytes_each"`
}

// benchCrypto is one signature plus one verification with the server's
// algorithm: the bound every figure can be read against.
type benchCrypto struct {
	Alg      string        `json:"alg"`
	PerToken time.Duration `json:"-"`
	PerCore  float64       `json:"per_core_per_second"`
	AllCPUs  float64       `json:"all_cpus_per_second"`
	RunShare float64       `json:"run_share,omitempty"` // this run's throughput / AllCPUs
}

// MarshalJSON writes the durations as seconds.
func (r benchReport) MarshalJSON() ([]byte, error) {
	type plain benchReport
	return json.Marshal(struct {
		plain
		DurationS float64 `json:"duration_seconds"`
		WarmupS   float64 `json:"warmup_seconds"`
	}{plain(r), r.Duration.Seconds(), r.Warmup.Seconds()})
}

// MarshalJSON writes the percentiles as seconds.
func (l benchLatency) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		P50 float64 `json:"p50_seconds"`
		P90 float64 `json:"p90_seconds"`
		P99 float64 `json:"p99_seconds"`
		Max float64 `json:"max_seconds"`
	}{l.P50.Seconds(), l.P90.Seconds(), l.P99.Seconds(), l.Max.Seconds()})
}

// MarshalJSON adds the bound per token in seconds.
func (c benchCrypto) MarshalJSON() ([]byte, error) {
	type plain benchCrypto
	return json.Marshal(struct {
		plain
		PerTokenS float64 `json:"per_token_seconds"`
	}{plain(c), c.PerToken.Seconds()})
}

// printHeader writes what is measured, and where.
func (r *benchReport) printHeader(out io.Writer) {
	fmt.Fprintf(out, "mandate bench: %s", r.Op)
	if r.Depth > 0 {
		fmt.Fprintf(out, " at depth %d", r.Depth)
	}
	if r.Rate > 0 {
		fmt.Fprintf(out, ", %d/s offered", r.Rate)
	} else {
		fmt.Fprintf(out, ", %d in flight", r.Concurrency)
	}
	where := r.Server
	if r.Embedded {
		where += " (embedded, durable bbolt, bcrypt cost " + strconv.Itoa(r.BcryptCost) + ")"
	}
	fmt.Fprintf(out, ", %s after %s warm-up, against %s; %d CPUs, %s\n", r.Duration, r.Warmup, where, r.CPUs, r.GoVersion)
}

// printResults writes throughput, latency, errors, memory, store and the
// crypto bound.
func (r *benchReport) printResults(out io.Writer) {
	fmt.Fprintf(out, "requests     %d (%d ok) in %s\n", r.Requests, r.OK, r.Duration)
	fmt.Fprintf(out, "throughput   %.0f ok/s\n", r.Throughput)
	if l := r.Latency; l != nil {
		fmt.Fprintf(out, "latency      p50 %s  p90 %s  p99 %s  max %s\n", round(l.P50), round(l.P90), round(l.P99), round(l.Max))
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(out, "errors       none")
	} else {
		codes := make([]string, 0, len(r.Errors))
		for c := range r.Errors {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		parts := make([]string, len(codes))
		for i, c := range codes {
			parts[i] = fmt.Sprintf("%s %d", c, r.Errors[c])
		}
		fmt.Fprintf(out, "errors       %s\n", strings.Join(parts, ", "))
	}
	if r.RSS != nil {
		fmt.Fprintf(out, "server RSS   %s\n", formatRSS(*r.RSS))
	} else {
		fmt.Fprintf(out, "server RSS   unknown (%s)\n", r.RSSUnknown)
	}
	if st := r.Store; st != nil {
		fmt.Fprintf(out, "store        %.1f MiB: %d token records at %.0f bytes each (record and indexes), %d audit records at %.0f bytes each\n",
			float64(st.FileBytes)/(1<<20), st.TokenRecords, st.TokenBytesEach, st.AuditRecords, st.AuditBytesEach)
	}
	c := r.Crypto
	fmt.Fprintf(out, "crypto bound %s sign + verify %s per token → %.0f/s per core, %.0f/s on %d CPUs\n",
		c.Alg, c.PerToken.Round(100*time.Nanosecond), c.PerCore, c.AllCPUs, r.CPUs)
	if c.RunShare > 0 {
		fmt.Fprintf(out, "             this run: %.0f/s = %.0f%% of the all-CPU bound (load generator included)\n", r.Throughput, 100*c.RunShare)
	}
}

// formatRSS writes resident memory in MiB. A split total is printed as a sum
// whose rounded parts add up to the rounded total exactly (largest
// remainder), so the line never claims more than the whole.
func formatRSS(m benchRSS) string {
	mib := func(tenths int64) string { return fmt.Sprintf("%d.%d MiB", tenths/10, tenths%10) }
	const tenth = (1 << 20) / 10.0
	if !m.Split {
		return fmt.Sprintf("%s (%s)", mib(int64(float64(m.Total)/tenth+0.5)), m.Source)
	}
	parts := []int64{m.Anon, m.File, m.Shmem}
	total := int64(float64(m.Anon+m.File+m.Shmem)/tenth + 0.5)
	tenths, rems := make([]int64, len(parts)), make([]float64, len(parts))
	var sum int64
	for i, p := range parts {
		tenths[i] = int64(float64(p) / tenth)
		rems[i] = float64(p)/tenth - float64(tenths[i])
		sum += tenths[i]
	}
	for ; sum < total; sum++ { // hand the rounding to the largest remainders, once each
		best := 0
		for i := range rems {
			if rems[i] > rems[best] {
				best = i
			}
		}
		tenths[best]++
		rems[best] = -1
	}
	return fmt.Sprintf("%s = %s anonymous (heap, stacks; the load generator's included) + %s file-backed (the binary and the mapped data file) + %s shared (%s)",
		mib(total), mib(tenths[0]), mib(tenths[1]), mib(tenths[2]), m.Source)
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

// rssSplit reads this process's resident memory from /proc/self/status
// (Linux): VmRSS and its parts RssAnon, RssFile and RssShmem, from one
// snapshot, so the parts add up to the total.
func rssSplit() (benchRSS, bool) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return benchRSS{}, false
	}
	return parseRSS(string(raw))
}

// parseRSS reads the Rss fields of a /proc/PID/status text; ok only when the
// parts add up to VmRSS.
func parseRSS(status string) (benchRSS, bool) {
	m := benchRSS{Source: "/proc/self/status", Split: true}
	fields := map[string]*int64{"VmRSS": &m.Total, "RssAnon": &m.Anon, "RssFile": &m.File, "RssShmem": &m.Shmem}
	seen := 0
	for _, line := range strings.Split(status, "\n") {
		name, v, found := strings.Cut(line, ":")
		dst, want := fields[name]
		if !found || !want {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return benchRSS{}, false
		}
		*dst = kb * 1024
		seen++
	}
	if seen != len(fields) || m.Anon+m.File+m.Shmem != m.Total {
		return benchRSS{}, false
	}
	return m, true
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

// fill puts the measured phase's counts, throughput, percentiles and
// errors into the report.
func (r benchResult) fill(rep *benchReport) {
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
	}
	rep.Requests, rep.OK, rep.Errors = r.ok, r.ok, map[string]int{}
	for c, n := range r.errors {
		rep.Requests += n
		rep.Errors[c] = n
	}
	rep.Throughput = float64(r.ok) / rep.Duration.Seconds()
	if len(r.latencies) > 0 {
		rep.Latency = &benchLatency{P50: pct(.50), P90: pct(.90), P99: pct(.99), Max: r.latencies[len(r.latencies)-1]}
	}
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
