package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
)

// Crash safety (issue 7): `mandate serve` runs as a child process under
// concurrent client_credentials mints, token exchanges and revocations, and is
// killed with SIGKILL at random points. After every restart on the same data
// directory, every token and every revocation acknowledged with a 200 before
// the kill must be there and enforced, and the audit chain must verify.
//
// The seed is logged; MANDATE_CRASH_SEED=N replays a run's kill delays and
// request choices (the interleaving with the server is still the scheduler's).

const (
	crashKills     = 4                      // kills under load; one more follows the last check
	crashMinLoad   = 100 * time.Millisecond // load before a kill, at least
	crashMaxLoad   = 600 * time.Millisecond // and at most
	crashStartWait = 20 * time.Second       // bound on a child's start (log line, then /readyz)
	crashIssuer    = "http://mandate.crash.test"
	crashSecret    = "test-secret" // testHash's secret
)

// crashClients is the clients section of the configurations of the tests
// that run `serve` as a child (crash, cluster, failover, store copy): two
// agents that mint and exchange, a resource server, an admin, all with
// crashSecret.
var crashClients = fmt.Sprintf(`clients:
  - id: orchestrator
    secret_hash: "%[1]s"
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*"]
    audiences: ["https://db.example"]
  - id: researcher
    secret_hash: "%[1]s"
    grants: [client_credentials, token_exchange]
    scopes: ["db:read:*"]
    audiences: ["https://db.example"]
  - id: rs
    secret_hash: "%[1]s"
    role: resource_server
  - id: ops
    secret_hash: "%[1]s"
    role: admin
`, testHash)

func TestCrashSafetyUnderSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server as a child process")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MANDATE_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MANDATE_CRASH_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with MANDATE_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dataDir := filepath.Join(t.TempDir(), "data")
	// The issuer is fixed and the listener takes any free port: tokens keep a
	// valid iss across restarts without reusing a port another process may
	// have taken meanwhile. The child logs the address it bound.
	cfgPath := writeConfig(t, fmt.Sprintf(`issuer: %s
listen: 127.0.0.1:0
data_dir: %q
tokens: {root_ttl: 15m, delegated_ttl: 10m, max_depth: 4, retention: 24h}
`, crashIssuer, dataDir)+crashClients)

	led := newCrashLedger()
	var anchors []string
	var lastAudit uint64
	start := time.Now()
	for cycle := 0; cycle <= crashKills; cycle++ {
		t0 := time.Now()
		child := startCrashChild(t, cfgPath)
		up := time.Since(t0)
		t1 := time.Now()
		rep := verifyCrashState(t, child, led, cycle, seed)
		if rep.Last < lastAudit {
			t.Errorf("cycle %d: the audit trail ends at #%d, before the #%d seen earlier", cycle, rep.Last, lastAudit)
		}
		lastAudit = rep.Last
		if rep.Last > 0 {
			anchors = append(anchors, fmt.Sprintf("%d:%s", rep.Last, rep.Head))
		}
		checked := time.Since(t1)
		if t.Failed() {
			child.dump(t)
			t.FailNow()
		}
		if cycle == crashKills {
			child.kill(t, nil)
			t.Logf("cycle %d: up in %v, checked %d tokens in %v; killed idle", cycle, up.Round(time.Millisecond), len(led.toks), checked.Round(time.Millisecond))
			break
		}
		delay := crashMinLoad + time.Duration(rng.Int64N(int64(crashMaxLoad-crashMinLoad)))
		st := runCrashLoad(t, child, led, seed, cycle, delay)
		t.Logf("cycle %d: up in %v, checked in %v; killed after %v of load: acknowledged %d mints, %d exchanges, %d revocations; %d unanswered, %d refused",
			cycle, up.Round(time.Millisecond), checked.Round(time.Millisecond), delay.Round(time.Millisecond), st.mints, st.exchanges, st.revokes, st.unanswered, st.refused)
	}

	// The file the last kill left behind, read directly (the OS released the
	// lock with the process).
	out, err := runCLI(t, "", "audit", "verify", "--db", dataDir)
	if err != nil || !strings.Contains(out, "audit trail intact") {
		t.Fatalf("audit verify --db after the last kill: %v\n%s", err, out)
	}
	for _, a := range anchors {
		out, err := runCLI(t, "", "audit", "verify", "--db", dataDir, "--anchor", a)
		if err != nil || !strings.Contains(out, "matches") {
			t.Errorf("anchor %s taken after a restart does not hold at the end: %v\n%s", a, err, out)
		}
	}
	if len(led.toks) == 0 || len(led.revoked) == 0 {
		t.Errorf("nothing was tested: %d tokens and %d revocations acknowledged", len(led.toks), len(led.revoked))
	}
	t.Logf("%d kills, %d acknowledged tokens, %d acknowledged revocations, audit intact through #%d; total %v",
		crashKills+1, len(led.toks), len(led.revoked), lastAudit, time.Since(start).Round(time.Millisecond))
}

// crashTok is a token whose issuance was acknowledged (200).
type crashTok struct {
	jti, holder, raw string
	lineage          []string
	actor            bool // an actor token: the revoker leaves it alone
}

// crashLedger is what the clients were told: acknowledged tokens, revocations
// sent, and revocations acknowledged.
type crashLedger struct {
	mu        sync.Mutex
	toks      map[string]*crashTok
	order     []*crashTok
	attempted map[string]bool // a revocation was sent: it may have landed
	revoked   map[string]bool // a revocation was acknowledged: it must have landed
}

func newCrashLedger() *crashLedger {
	return &crashLedger{toks: map[string]*crashTok{}, attempted: map[string]bool{}, revoked: map[string]bool{}}
}

func (l *crashLedger) add(tok *crashTok) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.toks[tok.jti] = tok
	l.order = append(l.order, tok)
}

// pick returns a random acknowledged token that ok accepts, or nil.
func (l *crashLedger) pick(r *rand.Rand, ok func(*crashTok) bool) *crashTok {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 16 {
		if len(l.order) == 0 {
			return nil
		}
		if tok := l.order[r.IntN(len(l.order))]; ok(tok) {
			return tok
		}
	}
	return nil
}

// live reports (racily, as a client would guess) that no revocation was sent
// for the token or an ancestor.
func (l *crashLedger) live(tok *crashTok) bool {
	if l.attempted[tok.jti] {
		return false
	}
	for _, a := range tok.lineage {
		if l.attempted[a] {
			return false
		}
	}
	return true
}

// expect lists the statuses the store may report for an acknowledged token:
// one when every revocation bearing on it was acknowledged or never sent, more
// when a revocation sent before a kill may or may not have landed.
func (l *crashLedger) expect(tok *crashTok) []string {
	ancAcked, ancSent := false, false
	for _, a := range tok.lineage {
		ancAcked = ancAcked || l.revoked[a]
		ancSent = ancSent || l.attempted[a]
	}
	switch {
	case l.revoked[tok.jti] && ancSent:
		// Revoking a token whose ancestor is revoked writes nothing.
		return []string{"revoked", "revoked-by-ancestor"}
	case l.revoked[tok.jti]:
		return []string{"revoked"}
	case l.attempted[tok.jti] && ancAcked:
		return []string{"revoked", "revoked-by-ancestor"}
	case l.attempted[tok.jti]:
		return []string{"active", "revoked", "revoked-by-ancestor"}
	case ancAcked:
		return []string{"revoked-by-ancestor"}
	case ancSent:
		return []string{"active", "revoked-by-ancestor"}
	}
	return []string{"active"}
}

// crashChild is one run of `mandate serve`.
type crashChild struct {
	cmd    *exec.Cmd
	base   string
	log    *childLog
	exited chan struct{}
	err    error // Wait's result once exited is closed
}

func startCrashChild(t *testing.T, cfgPath string) *crashChild {
	t.Helper()
	c := &crashChild{log: &childLog{addr: make(chan string, 1)}, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "serve", "--config", cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MANDATE_") { // the file alone configures the child
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	// Per-client rate limiting would throttle the verification's thousand
	// introspections; it is not what this test is about. (Set through the
	// environment: a key viper does not know is ignored there, not refused.)
	c.cmd.Env = append(c.cmd.Env, testChildEnv+"=serve", "MANDATE_RATE_LIMIT_PER_SECOND=0")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	deadline := time.NewTimer(crashStartWait)
	defer deadline.Stop()
	select {
	case addr := <-c.log.addr:
		c.base = "http://" + addr
	case <-c.exited:
		c.dump(t)
		t.Fatalf("serve exited before serving: %v", c.err)
	case <-deadline.C:
		c.dump(t)
		t.Fatalf("serve did not log its address within %v", crashStartWait)
	}
	probe := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := probe.Get(c.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		select {
		case <-c.exited:
			c.dump(t)
			t.Fatalf("serve exited before it was ready: %v", c.err)
		case <-deadline.C:
			c.dump(t)
			t.Fatalf("/readyz not 200 within %v (last: %v)", crashStartWait, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL, calls sent (when not nil), and waits for the process to
// be gone; it fails the test if the child had already exited on its own or
// reported a data race.
func (c *crashChild) kill(t *testing.T, sent func()) {
	t.Helper()
	select {
	case <-c.exited:
		c.dump(t)
		t.Fatalf("serve exited by itself before the kill: %v", c.err)
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if sent != nil {
		sent()
	}
	<-c.exited
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.dump(t)
		t.Fatalf("serve ended with %v, not by SIGKILL", c.err)
	}
	if r := c.log.raceReport(); r != "" {
		t.Fatalf("the race detector reported a data race in serve:\n%s", r)
	}
}

func (c *crashChild) dump(t *testing.T) {
	t.Helper()
	t.Logf("serve's last log lines:\n%s", c.log.tail())
}

// childLog collects the child's output: the address from the "mandate
// serving" line, the last lines for diagnosis, and any race report.
type childLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	race    []string // race detector reports, whole
	inRace  bool
	addr    chan string
}

func (w *childLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		switch {
		case strings.Contains(line, "WARNING: DATA RACE"):
			w.inRace = true
			w.race = append(w.race, line)
		case w.inRace:
			w.race = append(w.race, line)
			w.inRace = !strings.HasPrefix(line, "==================")
		}
		var rec struct {
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "mandate serving" && rec.Listen != "" {
			select {
			case w.addr <- rec.Listen:
			default:
			}
		}
		w.lines = append(w.lines, line)
		if len(w.lines) > 60 {
			w.lines = w.lines[len(w.lines)-60:]
		}
	}
	return len(p), nil
}

func (w *childLog) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n") + string(w.partial)
}

// raceReport is what the race detector printed, if anything.
func (w *childLog) raceReport() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.race, "\n")
}

// crashPost is clusterCall, its answer as the crash test reads it.
func crashPost(ctx context.Context, hc *http.Client, base, path, client string, form url.Values) (int, map[string]any, error) {
	return clusterCall(ctx, hc, base, path, client, form).values()
}

// crashGet is an admin's GET through clusterGet.
func crashGet(hc *http.Client, base, path string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("ops", crashSecret)
	return clusterGet(hc, req).values()
}

// decodeCrashToken reads the claims the ledger needs from a token the server
// issued (its signature is the server's business; introspection checks it).
func decodeCrashToken(raw string) (*crashTok, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c struct {
		JTI      string   `json:"jti"`
		ClientID string   `json:"client_id"`
		Lineage  []string `json:"lineage"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	if c.JTI == "" || c.ClientID == "" {
		return nil, fmt.Errorf("claims without jti or client_id: %s", payload)
	}
	return &crashTok{jti: c.JTI, holder: c.ClientID, raw: raw, lineage: c.Lineage}, nil
}

type crashStats struct {
	mu                        sync.Mutex
	mints, exchanges, revokes int
	unanswered, refused       int // connection errors (the kill), and non-200 answers
}

func (s *crashStats) count(p *int) { s.mu.Lock(); *p++; s.mu.Unlock() }

// failed counts a request that was not acknowledged.
func (s *crashStats) failed(err error) {
	if err != nil {
		s.count(&s.unanswered)
	} else {
		s.count(&s.refused)
	}
}

// runCrashLoad runs minters, exchangers and a revoker against the child, kills
// it after delay, and returns once every worker has stopped.
func runCrashLoad(t *testing.T, child *crashChild, led *crashLedger, seed uint64, cycle int, delay time.Duration) *crashStats {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &crashStats{}
	var failMu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		failMu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		failMu.Unlock()
	}
	clients := []string{"orchestrator", "researcher"}

	// mint gets a root by client_credentials and records it once acknowledged.
	mint := func(client string, actor bool) *crashTok {
		form := url.Values{"grant_type": {"client_credentials"}}
		if actor { // an identity token names the actor (docs/design.md)
			form.Set("audience", crashIssuer)
		}
		code, body, err := crashPost(ctx, hc, child.base, "/oauth2/token", client, form)
		if err != nil || code != http.StatusOK {
			st.failed(err)
			return nil
		}
		tok, derr := decodeCrashToken(fmt.Sprint(body["access_token"]))
		if derr != nil {
			fail("mint for %s: 200 with a bad token: %v", client, derr)
			return nil
		}
		tok.actor = actor
		led.add(tok)
		st.count(&st.mints)
		return tok
	}
	minter := func(r *rand.Rand) {
		for ctx.Err() == nil {
			mint(clients[r.IntN(2)], false)
		}
	}
	exchanger := func(r *rand.Rand) {
		actors := map[string]*crashTok{}
		for ctx.Err() == nil {
			parent := led.pick(r, func(tok *crashTok) bool { return !tok.actor && len(tok.lineage) < 3 && led.live(tok) })
			if parent == nil {
				mint(clients[r.IntN(2)], false)
				continue
			}
			form := url.Values{
				"grant_type": {oauth.GrantTokenExchange}, "subject_token": {parent.raw},
				"subject_token_type": {oauth.TokenTypeAccessToken},
			}
			if r.IntN(4) != 0 { // mostly to the other client, sometimes a down-scoped copy
				to := clients[0]
				if parent.holder == to {
					to = clients[1]
				}
				if actors[to] == nil {
					if actors[to] = mint(to, true); actors[to] == nil {
						continue
					}
				}
				form.Set("actor_token", actors[to].raw)
				form.Set("actor_token_type", oauth.TokenTypeAccessToken)
			}
			if r.IntN(2) == 0 {
				form.Set("scope", "db:read:orders")
			}
			code, body, err := crashPost(ctx, hc, child.base, "/oauth2/token", parent.holder, form)
			if err != nil || code != http.StatusOK {
				st.failed(err) // killed, or the parent's revocation won the race
				continue
			}
			tok, derr := decodeCrashToken(fmt.Sprint(body["access_token"]))
			if derr != nil {
				fail("exchange: 200 with a bad token: %v", derr)
				continue
			}
			if want := append(slices.Clone(parent.lineage), parent.jti); !slices.Equal(tok.lineage, want) {
				fail("exchange: child lineage %v, want %v", tok.lineage, want)
			}
			led.add(tok)
			st.count(&st.exchanges)
		}
	}
	revoker := func(r *rand.Rand) {
		for ctx.Err() == nil {
			var tok *crashTok
			led.mu.Lock()
			for range 16 {
				if len(led.order) == 0 {
					break
				}
				if c := led.order[r.IntN(len(led.order))]; !c.actor && !led.attempted[c.jti] {
					tok = c
					led.attempted[c.jti] = true // before sending: it may land without an answer
					break
				}
			}
			led.mu.Unlock()
			if tok == nil {
				mint(clients[r.IntN(2)], false)
				continue
			}
			code, _, err := crashPost(ctx, hc, child.base, "/oauth2/revoke", tok.holder, url.Values{"token": {tok.raw}})
			if err != nil || code != http.StatusOK {
				st.failed(err)
				continue
			}
			led.mu.Lock()
			led.revoked[tok.jti] = true
			led.mu.Unlock()
			st.count(&st.revokes)
		}
	}

	var wg sync.WaitGroup
	for i, w := range []func(*rand.Rand){minter, exchanger, exchanger, revoker} {
		r := rand.New(rand.NewPCG(seed, uint64(cycle*8+i+1)))
		wg.Go(func() { w(r) })
	}
	time.Sleep(delay)     // where the kill falls: the point of the test, not a wait for correctness
	child.kill(t, cancel) // stop the workers: nothing sent from now on can be answered
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	return st
}

// crashAuditReport is GET /admin/audit/verify's answer.
type crashAuditReport struct {
	OK       bool   `json:"ok"`
	Records  int    `json:"records"`
	First    uint64 `json:"first"`
	Last     uint64 `json:"last"`
	Head     string `json:"head"`
	BrokenAt uint64 `json:"broken_at"`
	Problem  string `json:"problem"`
}

// verifyCrashState checks, on a freshly restarted child, everything the
// ledger says was acknowledged, and returns the audit report.
func verifyCrashState(t *testing.T, child *crashChild, led *crashLedger, cycle int, seed uint64) crashAuditReport {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	where := fmt.Sprintf("cycle %d (seed %d)", cycle, seed)

	get := func(path string) map[string]any {
		code, body, err := crashGet(hc, child.base, path)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%s: GET %s: %d %v %v", where, path, code, body, err)
		}
		return body
	}
	// The store's view of every token, with its status.
	status := tokenStatuses(get)

	// Every acknowledged token has its record, with the status the
	// acknowledged revocations imply; introspection agrees; a token refused
	// for sure cannot be exchanged.
	type job struct {
		tok   *crashTok
		allow []string
	}
	var jobs []job
	for _, tok := range led.order {
		allow := led.expect(tok)
		got, ok := status[tok.jti]
		switch {
		case !ok:
			t.Errorf("%s: LOST: acknowledged token %s (holder %s, lineage %v) has no record after restart", where, tok.jti, tok.holder, tok.lineage)
		case !slices.Contains(allow, got):
			t.Errorf("%s: token %s (holder %s, lineage %v) is %q after restart, want one of %v (revoked acked %v)",
				where, tok.jti, tok.holder, tok.lineage, got, allow, led.revokedAmong(tok))
		}
		jobs = append(jobs, job{tok, allow})
	}
	var mu sync.Mutex
	var errs []string
	report := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, where+": "+fmt.Sprintf(format, args...))
		mu.Unlock()
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
				asker := "rs"
				if j.tok.actor { // identity tokens are inactive to resource servers (they grant nothing there)
					asker = "ops"
				}
				code, body, err := crashPost(ctx, hc, child.base, "/oauth2/introspect", asker, url.Values{"token": {j.tok.raw}})
				if err != nil || code != http.StatusOK {
					report("introspect %s: %d %v %v", j.tok.jti, code, body["error"], err)
					continue
				}
				if active := body["active"] == true; active != mustActive {
					report("introspection of %s says active=%v, want %v (allowed statuses %v)", j.tok.jti, active, mustActive, j.allow)
				} else if active && body["jti"] != j.tok.jti {
					report("introspection of %s answers for jti %v", j.tok.jti, body["jti"])
				}
				if !mustInactive {
					continue
				}
				code, body, err = crashPost(ctx, hc, child.base, "/oauth2/token", j.tok.holder, url.Values{
					"grant_type": {oauth.GrantTokenExchange}, "subject_token": {j.tok.raw},
					"subject_token_type": {oauth.TokenTypeAccessToken},
				})
				if err != nil || code != http.StatusBadRequest || body["error"] != oauth.CodeInvalidRequest {
					report("exchange of revoked %s: %d %v %v, want 400 invalid_request", j.tok.jti, code, body["error"], err)
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

	// The audit chain is intact, and holds the issuance of every
	// acknowledged token and the revocation of every acknowledged revocation
	// (each is written in the same transaction as its decision).
	raw, _ := json.Marshal(get("/admin/audit/verify"))
	var rep crashAuditReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Errorf("%s: AUDIT BROKEN at record #%d: %s (%d records, #%d..#%d)", where, rep.BrokenAt, rep.Problem, rep.Records, rep.First, rep.Last)
	}
	issued, revoked := map[string]bool{}, map[string]bool{}
	auditedJTIs(get, issued, revoked)
	for _, tok := range led.order {
		if !issued[tok.jti] {
			t.Errorf("%s: no audit record of the issuance of acknowledged token %s", where, tok.jti)
		}
	}
	for jti := range led.revoked {
		// A token already cut off by an ancestor's revocation needs no record
		// of its own: revoking it writes nothing.
		if !revoked[jti] && !led.ancestorSent(jti) {
			t.Errorf("%s: no audit record of the acknowledged revocation of %s", where, jti)
		}
	}
	return rep
}

// tokenStatuses is every token's status by jti, listed page by page
// through get (an admin's GET, failing the test unless it answers 200).
func tokenStatuses(get func(path string) map[string]any) map[string]string {
	status := map[string]string{}
	for after := ""; ; {
		body := get("/admin/tokens?limit=1000&after=" + url.QueryEscape(after))
		list, _ := body["tokens"].([]any)
		for _, n := range list {
			m, _ := n.(map[string]any)
			status[fmt.Sprint(m["jti"])] = fmt.Sprint(m["status"])
		}
		next, _ := body["next"].(string)
		if next == "" || len(list) == 0 {
			return status
		}
		after = next
	}
}

// auditedJTIs reads the audit trail page by page through get (as for
// tokenStatuses) and adds the jti of each issued record to issued and of
// each revoked record to revoked.
func auditedJTIs(get func(path string) map[string]any, issued, revoked map[string]bool) {
	for after := uint64(0); ; {
		recs, _ := get(fmt.Sprintf("/admin/audit?after=%d&limit=1000", after))["records"].([]any)
		if len(recs) == 0 {
			return
		}
		for _, r := range recs {
			m, _ := r.(map[string]any)
			switch m["type"] {
			case "issued":
				issued[fmt.Sprint(m["jti"])] = true
			case "revoked":
				revoked[fmt.Sprint(m["jti"])] = true
			}
			if seq, _ := m["seq"].(float64); uint64(seq) > after {
				after = uint64(seq)
			}
		}
	}
}

// revokedAmong lists the acknowledged revocations among a token and its
// ancestors, for failure messages.
func (l *crashLedger) revokedAmong(tok *crashTok) []string {
	var out []string
	for _, j := range append(slices.Clone(tok.lineage), tok.jti) {
		if l.revoked[j] {
			out = append(out, j)
		}
	}
	return out
}
