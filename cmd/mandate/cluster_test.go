package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// Several replicas on PostgreSQL (issue 16), as operators run them: `mandate
// serve` child processes with one configuration (issuer, clients, KEK) on
// one database, each with its own replica name and port, under mints,
// exchanges to depth 3, revocations and introspections spread over them by
// a few goroutines. The load is measured in acknowledged writes, not in
// time: each phase ends once so many more were acknowledged.
//
// Every answer is checked as it comes: a 503 carries Retry-After and comes
// only while the database is (or was just) away, never a 200 while it is
// down; an exchange is refused only below a revocation that was sent; an
// introspection agrees with every revocation acknowledged before it was
// sent, wherever it was made. At the end, every acknowledged token and
// revocation is in force at every replica and in the audit trail.

const (
	clusterIssuer = "http://mandate.cluster.test"
	// clusterPhaseWrites is how many acknowledged writes (mints, exchanges,
	// revocations) each phase of load adds.
	clusterPhaseWrites = 80
	// clusterWait bounds every wait for the load to make progress or for a
	// replica to be ready.
	clusterWait = 60 * time.Second
)

// clusterConfig writes the configuration of one replica of a cluster on
// database dsn: the same for every replica but for its name.
func clusterConfig(t *testing.T, dsn, replica, kekFile string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`issuer: %s
listen: 127.0.0.1:0
store: {postgres: {dsn: %q, replica: %q}}
signing: {kek_file: %q}
tokens: {root_ttl: 15m, delegated_ttl: 10m, max_depth: 4, retention: 24h}
`, clusterIssuer, dsn, replica, kekFile)+crashClients)
}

// clusterKEK writes a key-encryption key file (chmod 600), the same for
// every replica.
func clusterKEK(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kek")
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clusterReplica is one replica: its configuration, and the process now
// serving it (replaced when it is restarted).
type clusterReplica struct {
	name, cfg string
	child     *crashChild
}

// startReplicas starts one `serve` child per name on database dsn.
func startReplicas(t *testing.T, dsn string, names ...string) []*clusterReplica {
	t.Helper()
	kek := clusterKEK(t)
	var out []*clusterReplica
	for _, name := range names {
		r := &clusterReplica{name: name, cfg: clusterConfig(t, dsn, name, kek)}
		r.child = startCrashChild(t, r.cfg)
		out = append(out, r)
	}
	return out
}

// Database states, as the load sees them.
const (
	pgUp         int32 = iota
	pgGoing            // being stopped (or crashed): replicas may still succeed, or refuse
	pgDown             // stopped (or crashed), and not being brought back yet
	pgRecovering       // coming back: replicas may still refuse
)

// clusterLoad drives the replicas that are up and records, in a
// crashLedger, what they acknowledged.
type clusterLoad struct {
	led *crashLedger
	hc  *http.Client

	mu       sync.Mutex
	bases    []string // each replica's base URL; "" while it is down
	gens     []int    // each replica's restarts: an error from a replica killed meanwhile is expected
	problems []string
	issues   map[string]int // problems by kind, to keep the list short

	db       atomic.Int32 // pgUp, pgGoing, pgDown, pgRecovering
	outages  atomic.Int32 // database outages begun
	writes   atomic.Int64 // acknowledged mints, exchanges and revocations
	reads    atomic.Int64 // introspections answered 200
	refusals atomic.Int64 // 503s with Retry-After
	// lateRefusals counts 503s to requests sent once every replica was
	// ready again after an outage.
	lateRefusals atomic.Int64
	per503       []atomic.Int64
	unanswer     atomic.Int64 // connection errors (a replica killed)
	maxDepth     atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLoad starts the workers: a minter, two exchangers, a revoker and an
// introspector, each with its own seeded random source.
func startLoad(t *testing.T, rs []*clusterReplica, led *crashLedger, seed uint64) *clusterLoad {
	t.Helper()
	l := &clusterLoad{
		led:    led,
		hc:     &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}},
		gens:   make([]int, len(rs)),
		per503: make([]atomic.Int64, len(rs)),
		issues: map[string]int{},
	}
	for _, r := range rs {
		l.bases = append(l.bases, r.child.base)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for i, w := range []func(context.Context, *rand.Rand){l.minter, l.exchanger, l.exchanger, l.revoker, l.introspector} {
		r := rand.New(rand.NewPCG(seed, uint64(i+1)))
		l.wg.Go(func() { w(ctx, r) })
	}
	return l
}

// stop stops the workers and reports every problem they met.
func (l *clusterLoad) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	l.hc.CloseIdleConnections()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Error(p)
	}
}

// problem records what should not have happened (the first five of a kind).
func (l *clusterLoad) problem(kind, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.issues[kind]++
	if n := l.issues[kind]; n <= 5 {
		l.problems = append(l.problems, kind+": "+fmt.Sprintf(format, args...))
	} else if n == 6 {
		l.problems = append(l.problems, kind+": more of these follow, not shown")
	}
}

// down takes replica i out of the load (before it is killed); up puts it
// back at base.
func (l *clusterLoad) down(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bases[i] = ""
	l.gens[i]++
}

func (l *clusterLoad) up(i int, base string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bases[i] = base
}

// goingDown notes that the database is about to go away.
func (l *clusterLoad) goingDown() {
	l.outages.Add(1)
	l.db.Store(pgGoing)
}

// pick returns a random replica that is up.
func (l *clusterLoad) pick(r *rand.Rand) (int, string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var up []int
	for i, b := range l.bases {
		if b != "" {
			up = append(up, i)
		}
	}
	i := up[r.IntN(len(up))]
	return i, l.bases[i], l.gens[i]
}

// clusterAnswer is one answer of a replica.
type clusterAnswer struct {
	code int
	hdr  http.Header
	body map[string]any
	err  error
}

func (a clusterAnswer) error() string { s, _ := a.body["error"].(string); return s }

// values is the answer's status and body, or its error alone (a body cut
// short, or not JSON, is not an answer).
func (a clusterAnswer) values() (int, map[string]any, error) {
	if a.err != nil {
		return 0, nil, a.err
	}
	return a.code, a.body, nil
}

// clusterCall sends a form POST with HTTP Basic and decodes the JSON answer.
func clusterCall(ctx context.Context, hc *http.Client, base, path, client string, form url.Values) clusterAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return clusterAnswer{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, crashSecret)
	return clusterGet(hc, req)
}

// clusterGet sends req and decodes the JSON answer; a body cut short is an
// error, not an answer.
func clusterGet(hc *http.Client, req *http.Request) clusterAnswer {
	resp, err := hc.Do(req)
	if err != nil {
		return clusterAnswer{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return clusterAnswer{err: err}
	}
	a := clusterAnswer{code: resp.StatusCode, hdr: resp.Header, body: map[string]any{}}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			a.err = fmt.Errorf("status %d, body %q: %w", resp.StatusCode, raw, err)
		}
	}
	return a
}

// post sends one request of the load to a replica that is up and checks
// what holds for every endpoint: a connection error only from a replica
// killed meanwhile; a 503 only with Retry-After and temporarily_unavailable,
// and only once the database went away; no 200 from a request sent and
// answered while it was down. It returns the answer, and whether it is
// one the caller should look at (200 or 4xx).
func (l *clusterLoad) post(ctx context.Context, r *rand.Rand, what, path, client string, form url.Values) (clusterAnswer, bool) {
	i, base, gen := l.pick(r)
	before := l.db.Load()
	a := clusterCall(ctx, l.hc, base, path, client, form)
	after := l.db.Load()
	if ctx.Err() != nil {
		return a, false
	}
	switch {
	case a.err != nil:
		l.mu.Lock()
		killed := l.gens[i] != gen
		l.mu.Unlock()
		if !killed {
			l.problem("unanswered", "%s at replica %d, which was not killed: %v", what, i, a.err)
		}
		l.unanswer.Add(1)
		return a, false
	case a.code == http.StatusServiceUnavailable:
		if a.hdr.Get("Retry-After") == "" || a.error() != oauth.CodeTemporarilyUnavailable {
			l.problem("bad 503", "%s at replica %d: 503 %q without Retry-After or temporarily_unavailable", what, i, a.error())
		}
		if before == pgUp && after == pgUp {
			if l.outages.Load() == 0 {
				l.problem("503 while up", "%s at replica %d: 503 before the database ever went away: %v", what, i, a.body)
			}
			l.lateRefusals.Add(1)
		}
		l.refusals.Add(1)
		l.per503[i].Add(1)
		return a, false
	case a.code == http.StatusOK && before == pgDown && after == pgDown:
		l.problem("success while down", "%s at replica %d: 200 while the database was down: %v", what, i, a.body)
	case a.code >= 500:
		l.problem("server error", "%s at replica %d: %d %v", what, i, a.code, a.body)
		return a, false
	}
	return a, true
}

// mint gets a root by client_credentials (an identity token when actor)
// and records it once acknowledged.
func (l *clusterLoad) mint(ctx context.Context, r *rand.Rand, client string, actor bool) *crashTok {
	form := url.Values{"grant_type": {"client_credentials"}}
	if actor {
		form.Set("audience", clusterIssuer)
	}
	a, ok := l.post(ctx, r, "mint", "/oauth2/token", client, form)
	if !ok {
		return nil
	}
	if a.code != http.StatusOK {
		l.problem("mint refused", "mint for %s: %d %v", client, a.code, a.body)
		return nil
	}
	tok, err := decodeCrashToken(fmt.Sprint(a.body["access_token"]))
	if err != nil {
		l.problem("bad token", "mint for %s: 200 with a bad token: %v", client, err)
		return nil
	}
	tok.actor = actor
	l.led.add(tok)
	l.writes.Add(1)
	return tok
}

var clusterClients = []string{"orchestrator", "researcher"}

func (l *clusterLoad) minter(ctx context.Context, r *rand.Rand) {
	for ctx.Err() == nil {
		l.mint(ctx, r, clusterClients[r.IntN(2)], false)
	}
}

// exchanger exchanges acknowledged live tokens of depth < 3 (so children
// reach depth 3), mostly to the other client with its identity token as
// the actor, sometimes down-scoped to the same holder.
func (l *clusterLoad) exchanger(ctx context.Context, r *rand.Rand) {
	actors := map[string]*crashTok{}
	led := l.led
	for ctx.Err() == nil {
		parent := led.pick(r, func(tok *crashTok) bool { return !tok.actor && len(tok.lineage) < 3 && led.live(tok) })
		if parent == nil {
			l.mint(ctx, r, clusterClients[r.IntN(2)], false)
			continue
		}
		form := url.Values{
			"grant_type": {oauth.GrantTokenExchange}, "subject_token": {parent.raw},
			"subject_token_type": {oauth.TokenTypeAccessToken},
		}
		if r.IntN(4) != 0 {
			to := clusterClients[0]
			if parent.holder == to {
				to = clusterClients[1]
			}
			if actors[to] == nil {
				if actors[to] = l.mint(ctx, r, to, true); actors[to] == nil {
					continue
				}
			}
			form.Set("actor_token", actors[to].raw)
			form.Set("actor_token_type", oauth.TokenTypeAccessToken)
		}
		if r.IntN(2) == 0 {
			form.Set("scope", "db:read:orders")
		}
		a, ok := l.post(ctx, r, "exchange", "/oauth2/token", parent.holder, form)
		if !ok {
			continue
		}
		if a.code != http.StatusOK {
			// Refused: only because a revocation of the parent or an
			// ancestor was sent (it may have won the race).
			led.mu.Lock()
			live := led.live(parent)
			led.mu.Unlock()
			if live || a.error() != oauth.CodeInvalidRequest {
				l.problem("exchange refused", "exchange of %s (lineage %v, no revocation sent for it or an ancestor: %v): %d %v", parent.jti, parent.lineage, live, a.code, a.body)
			}
			continue
		}
		tok, err := decodeCrashToken(fmt.Sprint(a.body["access_token"]))
		if err != nil {
			l.problem("bad token", "exchange: 200 with a bad token: %v", err)
			continue
		}
		if want := append(slices.Clone(parent.lineage), parent.jti); !slices.Equal(tok.lineage, want) {
			l.problem("lineage", "exchange: child lineage %v, want %v", tok.lineage, want)
		}
		led.add(tok)
		l.writes.Add(1)
		for d := int64(len(tok.lineage)); ; {
			m := l.maxDepth.Load()
			if d <= m || l.maxDepth.CompareAndSwap(m, d) {
				break
			}
		}
	}
}

// revoker revokes acknowledged tokens (never the actors' identity tokens),
// noting each as sent before it is sent: it may land unacknowledged.
func (l *clusterLoad) revoker(ctx context.Context, r *rand.Rand) {
	led := l.led
	for ctx.Err() == nil {
		var tok *crashTok
		led.mu.Lock()
		for range 16 {
			if len(led.order) == 0 {
				break
			}
			if c := led.order[r.IntN(len(led.order))]; !c.actor && !led.attempted[c.jti] {
				tok = c
				led.attempted[c.jti] = true
				break
			}
		}
		led.mu.Unlock()
		if tok == nil {
			l.mint(ctx, r, clusterClients[r.IntN(2)], false)
			continue
		}
		a, ok := l.post(ctx, r, "revocation", "/oauth2/revoke", tok.holder, url.Values{"token": {tok.raw}})
		if !ok {
			continue
		}
		if a.code != http.StatusOK {
			l.problem("revocation refused", "revocation of %s by its holder: %d %v", tok.jti, a.code, a.body)
			continue
		}
		led.mu.Lock()
		led.revoked[tok.jti] = true
		led.mu.Unlock()
		l.writes.Add(1)
	}
}

// introspector introspects acknowledged tokens at any replica: a token
// with no revocation sent for it or an ancestor is active, one with an
// acknowledged revocation of it or an ancestor is not, wherever either
// was acknowledged.
func (l *clusterLoad) introspector(ctx context.Context, r *rand.Rand) {
	led := l.led
	for ctx.Err() == nil {
		tok := led.pick(r, func(tok *crashTok) bool { return !tok.actor })
		if tok == nil {
			l.mint(ctx, r, clusterClients[r.IntN(2)], false)
			continue
		}
		// Inactive if a revocation was acknowledged before it was sent;
		// active if none was sent even by the time it was answered.
		led.mu.Lock()
		allow := led.expect(tok)
		led.mu.Unlock()
		mustInactive := !slices.Contains(allow, "active")
		a, ok := l.post(ctx, r, "introspection", "/oauth2/introspect", "rs", url.Values{"token": {tok.raw}})
		if !ok {
			continue
		}
		if a.code != http.StatusOK {
			l.problem("introspection refused", "introspection of %s: %d %v", tok.jti, a.code, a.body)
			continue
		}
		led.mu.Lock()
		mustActive := led.live(tok)
		led.mu.Unlock()
		l.reads.Add(1)
		active := a.body["active"] == true
		if (mustActive && !active) || (mustInactive && active) {
			l.problem("introspection", "introspection of %s (lineage %v) says active=%v; allowed statuses when it was sent: %v", tok.jti, tok.lineage, active, allow)
		}
	}
}

// pollUntil polls (every 5 ms, up to clusterWait) until ok holds, failing t
// with what otherwise.
func pollUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, clusterWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitWrites waits until n more writes were acknowledged.
func (l *clusterLoad) awaitWrites(t *testing.T, n int64, what string) {
	t.Helper()
	target := l.writes.Load() + n
	pollUntil(t, fmt.Sprintf("%d acknowledged writes %s (%d so far)", n, what, l.writes.Load()), func() bool { return l.writes.Load() >= target })
}

// awaitRefusals waits until every replica that is up answered n more 503s.
func (l *clusterLoad) awaitRefusals(t *testing.T, n int64) {
	t.Helper()
	targets := make([]int64, len(l.per503))
	for i := range targets {
		targets[i] = l.per503[i].Load() + n
	}
	pollUntil(t, fmt.Sprintf("%d more 503s from each replica while the database is down", n), func() bool {
		for i := range targets {
			if l.per503[i].Load() < targets[i] {
				return false
			}
		}
		return true
	})
}

// expectDown checks, at each replica, what answers while the database is
// away: /readyz, the feed (a fresh read and a long poll) and a token
// request each 503 with Retry-After.
func expectDown(t *testing.T, rs []*clusterReplica) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	for _, rep := range rs {
		for _, path := range []string{"/readyz", "/oauth2/revocations", "/oauth2/revocations?since=x&wait=5"} {
			req, _ := http.NewRequest(http.MethodGet, rep.child.base+path, nil)
			req.SetBasicAuth("rs", crashSecret)
			a := clusterGet(hc, req)
			if a.err != nil || a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" {
				t.Errorf("replica %s: GET %s while the database is down: %d Retry-After %q %v %v", rep.name, path, a.code, a.hdr.Get("Retry-After"), a.body, a.err)
			}
		}
		a := clusterCall(context.Background(), hc, rep.child.base, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}})
		if a.err != nil || a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" {
			t.Errorf("replica %s: a mint while the database is down: %d Retry-After %q %v %v", rep.name, a.code, a.hdr.Get("Retry-After"), a.body, a.err)
		}
	}
}

// awaitReady waits until every replica's /readyz answers 200, and returns
// how long that took.
func awaitReady(t *testing.T, rs []*clusterReplica) time.Duration {
	t.Helper()
	start := time.Now()
	probe := &http.Client{Timeout: 5 * time.Second}
	defer probe.CloseIdleConnections()
	for _, rep := range rs {
		pollUntil(t, "replica "+rep.name+" ready again", func() bool {
			resp, err := probe.Get(rep.child.base + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return time.Since(start)
}

// TestClusterOfReplicasOnPostgres: three replicas on one database under
// load. One is killed (SIGKILL) mid-load and restarted under its name;
// PostgreSQL is stopped mid-load, then crashed (replicas answer 503 with
// Retry-After, never a success) and started again each time (they recover
// by themselves). Afterwards every acknowledged token and revocation is in
// force at every replica. Last, a parent is revoked through one replica
// while the other two exchange it as fast as they can: no child is usable
// anywhere.
func TestClusterOfReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three servers and a PostgreSQL as child processes")
	}
	db := pgtest.Own(t)
	start := time.Now()
	rs := startReplicas(t, db.NewDatabase(t), "r1", "r2", "r3")
	t.Logf("three replicas up in %v", time.Since(start).Round(time.Millisecond))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	cursor := followFeed(t, rs[0], "", nil)
	led := newCrashLedger()
	l := startLoad(t, rs, led, seed)
	defer l.cancel()

	l.awaitWrites(t, clusterPhaseWrites, "before the kill")
	victim := 1
	l.down(victim)
	rs[victim].child.kill(t, nil)
	l.awaitWrites(t, clusterPhaseWrites, "with a replica killed")
	t0 := time.Now()
	rs[victim].child = startCrashChild(t, rs[victim].cfg)
	l.up(victim, rs[victim].child.base)
	t.Logf("replica %s killed and restarted in %v", rs[victim].name, time.Since(t0).Round(time.Millisecond))
	l.awaitWrites(t, clusterPhaseWrites, "after the restart")

	// PostgreSQL goes away and comes back, twice: a fast shutdown
	// (sessions cut, a checkpoint), then a crash (immediate shutdown: the
	// restart recovers from the WAL).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, outage := range []struct {
		name string
		stop func()
	}{{"stopped", db.Stop}, {"crashed", db.Crash}} {
		l.goingDown()
		outage.stop()
		l.db.Store(pgDown)
		l.awaitRefusals(t, 5)
		expectDown(t, rs)
		l.db.Store(pgRecovering)
		t0 = time.Now()
		if err := db.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		back := time.Since(t0)
		took := awaitReady(t, rs)
		t.Logf("PostgreSQL %s mid-load: back in %v; every replica ready %v later", outage.name, back.Round(time.Millisecond), took.Round(time.Millisecond))
		l.db.Store(pgUp)
		l.awaitWrites(t, clusterPhaseWrites, "after PostgreSQL came back")
	}
	l.stop(t)
	t.Logf("load: %d writes acknowledged (%d tokens, %d revocations), %d introspections answered, %d 503s (%d once every replica was ready again), %d unanswered (the kill); deepest token at depth %d",
		l.writes.Load(), len(led.toks), len(led.revoked), l.reads.Load(), l.refusals.Load(), l.lateRefusals.Load(), l.unanswer.Load(), l.maxDepth.Load())
	if l.maxDepth.Load() < 3 {
		t.Errorf("no exchange reached depth 3 (deepest: %d)", l.maxDepth.Load())
	}
	stopIfFailed(t, rs)

	t0 = time.Now()
	verifyCluster(t, rs, led)
	t.Logf("every acknowledged token and revocation checked at every replica in %v", time.Since(t0).Round(time.Millisecond))

	expectFeedHasAll(t, rs, cursor, led)

	expectFeedWakes(t, rs)

	t0 = time.Now()
	raceRevocationAcrossReplicas(t, rs)
	t.Logf("exchange/revocation races in %v", time.Since(t0).Round(time.Millisecond))
	expectNoRaceReports(t, rs)
}

// stopIfFailed stops the test, with each replica's last log lines, if it
// has failed.
func stopIfFailed(t *testing.T, rs []*clusterReplica) {
	t.Helper()
	if t.Failed() {
		for _, r := range rs {
			r.child.dump(t)
		}
		t.FailNow()
	}
}

// expectNoRaceReports fails the test if the race detector reported a data
// race in any replica.
func expectNoRaceReports(t *testing.T, rs []*clusterReplica) {
	t.Helper()
	for _, r := range rs {
		if rep := r.child.log.raceReport(); rep != "" {
			t.Errorf("the race detector reported a data race in replica %s:\n%s", r.name, rep)
		}
	}
}

// verifyCluster checks, once the load has stopped, everything the ledger
// says was acknowledged: each token has its record, with the status its
// acknowledged revocations imply; each introspects as it must at every
// replica; a token surely revoked cannot be exchanged; every chain of the
// audit trail verifies, and together they hold the issuance of every
// acknowledged token and every acknowledged revocation.
func verifyCluster(t *testing.T, rs []*clusterReplica, led *crashLedger) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	admin := func(base, path string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.SetBasicAuth("ops", crashSecret)
		a := clusterGet(hc, req)
		if a.err != nil || a.code != http.StatusOK {
			t.Fatalf("GET %s%s: %d %v %v", base, path, a.code, a.body, a.err)
		}
		return a.body
	}

	status := tokenStatuses(func(path string) map[string]any { return admin(rs[0].child.base, path) })
	type job struct {
		tok      *crashTok
		allow    []string
		at       int
		exchange bool
	}
	var jobs []job
	for n, tok := range led.order {
		allow := led.expect(tok)
		got, ok := status[tok.jti]
		switch {
		case !ok:
			t.Errorf("LOST: acknowledged token %s (holder %s, lineage %v) has no record", tok.jti, tok.holder, tok.lineage)
		case !slices.Contains(allow, got):
			t.Errorf("token %s (holder %s, lineage %v) is %q, want one of %v (acknowledged revocations among it and its ancestors: %v)",
				tok.jti, tok.holder, tok.lineage, got, allow, led.revokedAmong(tok))
		}
		for i := range rs {
			jobs = append(jobs, job{tok, allow, i, i == n%len(rs)})
		}
	}
	var mu sync.Mutex
	var errs []string
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for j := range ch {
				mustActive := len(j.allow) == 1 && j.allow[0] == "active"
				mustInactive := !slices.Contains(j.allow, "active")
				if !mustActive && !mustInactive {
					continue
				}
				rep := rs[j.at]
				asker := "rs"
				if j.tok.actor { // identity tokens are inactive to resource servers
					asker = "ops"
				}
				a := clusterCall(ctx, hc, rep.child.base, "/oauth2/introspect", asker, url.Values{"token": {j.tok.raw}})
				if a.err != nil || a.code != http.StatusOK {
					report("replica %s: introspect %s: %d %v %v", rep.name, j.tok.jti, a.code, a.body, a.err)
					continue
				}
				if active := a.body["active"] == true; active != mustActive {
					report("replica %s: introspection of %s (lineage %v) says active=%v, want %v (allowed statuses %v)", rep.name, j.tok.jti, j.tok.lineage, active, mustActive, j.allow)
				}
				if !mustInactive || !j.exchange {
					continue
				}
				a = clusterCall(ctx, hc, rep.child.base, "/oauth2/token", j.tok.holder, url.Values{
					"grant_type": {oauth.GrantTokenExchange}, "subject_token": {j.tok.raw},
					"subject_token_type": {oauth.TokenTypeAccessToken},
				})
				if a.err != nil || a.code != http.StatusBadRequest || a.error() != oauth.CodeInvalidRequest {
					report("replica %s: exchange of revoked %s: %d %v %v, want 400 invalid_request", rep.name, j.tok.jti, a.code, a.body, a.err)
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}

	// The audit trail: one chain per replica, all intact; each replica
	// reads its own, and together they record every acknowledged decision.
	issued, revoked := map[string]bool{}, map[string]bool{}
	for _, rep := range rs {
		if v := admin(rep.child.base, "/admin/audit/verify"); v["ok"] != true {
			t.Errorf("replica %s: AUDIT BROKEN: %v", rep.name, v)
		}
		auditedJTIs(func(path string) map[string]any { return admin(rep.child.base, path) }, issued, revoked)
	}
	missing := 0
	for _, tok := range led.order {
		if !issued[tok.jti] {
			if missing++; missing <= 5 {
				t.Errorf("no audit record, in any replica's chain, of the issuance of acknowledged token %s", tok.jti)
			}
		}
	}
	for jti := range led.revoked {
		if !revoked[jti] && !led.ancestorSent(jti) { // below a revoked ancestor, revoking writes nothing
			t.Errorf("no audit record, in any replica's chain, of the acknowledged revocation of %s", jti)
		}
	}
}

// ancestorSent reports whether a revocation of an ancestor of the token
// jti was sent.
func (l *crashLedger) ancestorSent(jti string) bool {
	if tok := l.toks[jti]; tok != nil {
		for _, a := range tok.lineage {
			if l.attempted[a] {
				return true
			}
		}
	}
	return false
}

// expectFeedHasAll checks that a verifier that took its cursor before the
// load reads, from any replica, every revocation acknowledged through any
// of them, each once, whatever happened meanwhile (kills, outages, a
// failover), without a reset.
func expectFeedHasAll(t *testing.T, rs []*clusterReplica, cursor string, led *crashLedger) {
	t.Helper()
	for _, rep := range rs {
		seen := map[string]int{}
		followFeed(t, rep, cursor, seen)
		missing := 0
		for jti := range led.revoked {
			if seen[jti] != 1 && !led.ancestorSent(jti) { // below a revoked ancestor, revoking writes nothing
				if missing++; missing <= 5 {
					t.Errorf("replica %s's feed from the cursor of before the load has revocation %s %d times, want once", rep.name, jti, seen[jti])
				}
			}
		}
	}
}

// followFeed reads rep's revocation feed from cursor until it has nothing
// more, counting each entry's jti in seen (when not nil), and returns the
// cursor it ends at. A cursor given must be served as it is (no reset).
func followFeed(t *testing.T, rep *clusterReplica, cursor string, seen map[string]int) string {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		req, _ := http.NewRequest(http.MethodGet, rep.child.base+"/oauth2/revocations?since="+url.QueryEscape(cursor), nil)
		req.SetBasicAuth("rs", crashSecret)
		a := clusterGet(hc, req)
		if a.err != nil || a.code != http.StatusOK {
			t.Fatalf("replica %s: feed since %q: %d %v %v", rep.name, cursor, a.code, a.body, a.err)
		}
		if cursor != "" && a.body["reset"] != false {
			t.Fatalf("replica %s: the feed reset the cursor %q: %v", rep.name, cursor, a.body)
		}
		entries, _ := a.body["revocations"].([]any)
		for _, e := range entries {
			m, _ := e.(map[string]any)
			if seen != nil {
				seen[fmt.Sprint(m["jti"])]++
			}
		}
		next, _ := a.body["cursor"].(string)
		if len(entries) == 0 && cursor != "" {
			return next
		}
		cursor = next
	}
}

// expectFeedWakes checks that every replica follows the others' revocations
// as they happen (its notification listener is connected, after whatever
// the database went through): a long poll waiting at each replica is
// answered within a few seconds of a revocation through the next one,
// not at the end of its wait.
func expectFeedWakes(t *testing.T, rs []*clusterReplica) {
	t.Helper()
	hc := &http.Client{Timeout: 40 * time.Second}
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	const wait, limit = 20 * time.Second, 3 * time.Second
	for i, b := range rs {
		a := rs[(i+1)%len(rs)]
		cursor := followFeed(t, b, "", nil)
		m := clusterCall(ctx, hc, a.child.base, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}})
		if m.err != nil || m.code != http.StatusOK {
			t.Fatalf("mint at %s: %d %v %v", a.name, m.code, m.body, m.err)
		}
		tok := fmt.Sprint(m.body["access_token"])
		polled := make(chan clusterAnswer, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/oauth2/revocations?since=%s&wait=%d", b.child.base, url.QueryEscape(cursor), int(wait.Seconds())), nil)
			req.SetBasicAuth("rs", crashSecret)
			polled <- clusterGet(hc, req)
		}()
		pollUntil(t, "the long poll at "+b.name+" waiting", func() bool {
			return strings.Contains(metricsText(t, b.child.base), "mandate_feed_subscribers 1\n")
		})
		start := time.Now()
		if r := clusterCall(ctx, hc, a.child.base, "/oauth2/revoke", "orchestrator", url.Values{"token": {tok}}); r.err != nil || r.code != http.StatusOK {
			t.Fatalf("revoke at %s: %d %v %v", a.name, r.code, r.body, r.err)
		}
		r := <-polled
		took := time.Since(start)
		entries, _ := r.body["revocations"].([]any)
		if r.err != nil || r.code != http.StatusOK || len(entries) != 1 || took > limit {
			t.Errorf("a long poll at %s, woken by a revocation through %s: %d %v %v after %v", b.name, a.name, r.code, r.body, r.err, took.Round(time.Millisecond))
		} else {
			t.Logf("a revocation through %s woke a long poll at %s after %v", a.name, b.name, took.Round(time.Millisecond))
		}
	}
}

// raceRevocationAcrossReplicas: in each round a root is minted at one
// replica (A) and exchanged — and its children exchanged once more — as
// fast as they can by two workers at each of the other two, until each of
// them has had a few exchanges granted; then A revokes the root. No
// exchange sent after A acknowledged the revocation succeeds, no refusal
// comes before it was sent, and afterwards no token issued in the race is
// active at any replica.
func raceRevocationAcrossReplicas(t *testing.T, rs []*clusterReplica) {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	const rounds, workers = 3, 2
	var issued []string
	for round := range rounds {
		a := rs[round%len(rs)]
		var others []*clusterReplica
		for _, r := range rs {
			if r != a {
				others = append(others, r)
			}
		}
		m := clusterCall(ctx, hc, a.child.base, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}})
		if m.code != http.StatusOK {
			t.Fatalf("round %d: mint at %s: %d %v %v", round, a.name, m.code, m.body, m.err)
		}
		parent := fmt.Sprint(m.body["access_token"])
		exchange := func(base, tok string) clusterAnswer {
			return clusterCall(ctx, hc, base, "/oauth2/token", "orchestrator", url.Values{
				"grant_type": {oauth.GrantTokenExchange}, "subject_token": {tok}, "subject_token_type": {oauth.TokenTypeAccessToken},
			})
		}
		var (
			mu                  sync.Mutex
			sending, acked      atomic.Bool // the revocation is being sent; it was acknowledged
			granted             = make([]atomic.Int64, len(others))
			problems            []string
			wg                  sync.WaitGroup
			want                = int64(2 + 2*round) // exchanges granted at each replica before the revocation
			grantedAfterSending atomic.Int64
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("round %d: ", round)+fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		for k, rep := range others {
			for range workers {
				wg.Go(func() {
					for {
						late := acked.Load() // sent after the acknowledgement: must fail
						r := exchange(rep.child.base, parent)
						switch {
						case r.err == nil && r.code == http.StatusOK:
							if late {
								fail("an exchange at %s sent after the revocation was acknowledged succeeded", rep.name)
							}
							if sending.Load() {
								grantedAfterSending.Add(1)
							}
							child := fmt.Sprint(r.body["access_token"])
							mu.Lock()
							issued = append(issued, child)
							mu.Unlock()
							granted[k].Add(1)
							if g := exchange(rep.child.base, child); g.err == nil && g.code == http.StatusOK {
								mu.Lock()
								issued = append(issued, fmt.Sprint(g.body["access_token"]))
								mu.Unlock()
							} else if g.err != nil || g.error() != oauth.CodeInvalidRequest {
								fail("a grandchild's exchange at %s: %d %v %v", rep.name, g.code, g.body, g.err)
							}
						case r.err == nil && r.error() == oauth.CodeInvalidRequest:
							if !sending.Load() {
								fail("an exchange at %s refused before the revocation was sent: %v", rep.name, r.body)
							}
							if late {
								return // refused, as every exchange from now on must be
							}
						default:
							fail("an exchange at %s during the race: %d %v %v", rep.name, r.code, r.body, r.err)
							return
						}
					}
				})
			}
		}
		pollUntil(t, fmt.Sprintf("round %d: %d exchanges granted at each of the other replicas", round, want), func() bool {
			for k := range granted {
				if granted[k].Load() < want {
					return false
				}
			}
			return true
		})
		sending.Store(true)
		rv := clusterCall(ctx, hc, a.child.base, "/oauth2/revoke", "orchestrator", url.Values{"token": {parent}})
		if rv.err != nil || rv.code != http.StatusOK {
			t.Fatalf("round %d: revoke at %s: %d %v %v", round, a.name, rv.code, rv.body, rv.err)
		}
		acked.Store(true)
		wg.Wait()
		for _, p := range problems {
			t.Error(p)
		}
		t.Logf("round %d: revoked at %s; %d exchanges granted at %s and %s before, %d of them while the revocation was in flight",
			round, a.name, granted[0].Load()+granted[1].Load(), others[0].name, others[1].name, grantedAfterSending.Load())
	}
	for _, tok := range issued {
		for _, rep := range rs {
			a := clusterCall(ctx, hc, rep.child.base, "/oauth2/introspect", "rs", url.Values{"token": {tok}})
			if a.err != nil || a.code != http.StatusOK || a.body["active"] != false {
				t.Fatalf("a token issued below a revoked root, at replica %s: %d %v %v", rep.name, a.code, a.body, a.err)
			}
		}
	}
	t.Logf("%d tokens issued in the races, none active at any replica", len(issued))
}
