package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// Feed follows Mandate's revocation feed: it long-polls the feed endpoint
// and keeps the set of revoked jtis whose tokens have not yet expired (plus
// the leeway). It is the RevocationSource of a verifier made by Discover. A
// Feed only ever adds revocations: they are permanent, so a reset (Mandate
// restored from a backup) never makes it forget one it knew.
type Feed struct {
	url          string
	http         *http.Client
	auth         basicAuth
	now          func() time.Time
	leeway       time.Duration
	maxStaleness time.Duration
	wait         time.Duration
	retryMax     time.Duration
	onSync       func(error)
	afterPoll    func(context.Context) // refreshes a stale JWKS, before OnSync
	// onRevokedKeys drops the signing keys an answer names compromised.
	onRevokedKeys func(kids []string)

	mu        sync.RWMutex
	revoked   map[string]int64 // jti → exp (Unix seconds)
	cursor    string
	lastPrune time.Time                 // guarded by mu
	lastSync  atomic.Pointer[time.Time] // when the feed last caught up; nil = never

	cancel context.CancelFunc
	done   chan struct{}
}

func newFeed(cfg Config, feedURL string, afterPoll func(context.Context)) *Feed {
	f := &Feed{url: feedURL, http: cfg.HTTPClient, auth: basicAuth{cfg.ClientID, cfg.ClientSecret}, now: cfg.Now,
		leeway: cfg.Leeway, maxStaleness: cfg.MaxStaleness, wait: cfg.FeedWait, retryMax: cfg.FeedRetryMax,
		onSync: cfg.OnSync, afterPoll: afterPoll, revoked: map[string]int64{}}
	setDefault(&f.leeway, DefaultLeeway)
	setDefault(&f.maxStaleness, DefaultMaxStaleness)
	setDefault(&f.wait, DefaultFeedWait)
	f.wait = min(max(f.wait, time.Second), f.maxStaleness/2)
	setDefault(&f.retryMax, 5*time.Second)
	return f
}

// NewFeed returns a follower of the revocation feed at feedURL, for a
// verifier whose keys the caller holds (New with a key set of its own) but
// whose revocations come live from Mandate. It uses cfg's ClientID and
// ClientSecret (a resource_server client), HTTPClient, Now, Leeway,
// MaxStaleness, FeedWait, FeedRetryMax and OnSync. dropKeys is told the kids
// of signing keys the feed reports compromised and must stop the key set
// trusting them; it is required, since a feed whose key reports went nowhere
// would leave a compromised key trusted. Call Start to follow the feed, or
// Sync to poll it once.
func NewFeed(cfg Config, feedURL string, dropKeys func(kids []string)) (*Feed, error) {
	u, err := url.Parse(feedURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("verifier: feed URL %q must be an http(s) URL without a query or credentials", feedURL)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("verifier: the revocation feed needs a resource_server ClientID and ClientSecret")
	}
	if dropKeys == nil {
		return nil, errors.New("verifier: NewFeed needs dropKeys, to stop trusting the keys the feed reports compromised")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := newFeed(cfg, feedURL, nil)
	f.onRevokedKeys = dropKeys
	return f, nil
}

// Start syncs the feed once and follows it in the background until Close,
// as Discover does. It fails only when the feed refused the credentials
// (ErrFeedCredentials); any other failed sync leaves verification failing
// closed until one succeeds.
func (f *Feed) Start(ctx context.Context) error {
	if f.done != nil {
		return errors.New("verifier: the feed is already started")
	}
	return f.start(ctx)
}

// start syncs once (reporting it to OnSync) and follows the feed in the
// background until Close; it fails, following nothing, when the feed refused
// the credentials (ErrFeedCredentials).
func (f *Feed) start(ctx context.Context) error {
	err := f.Sync(ctx)
	if f.onSync != nil {
		f.onSync(err)
	}
	if errors.Is(err, ErrFeedCredentials) {
		return err // a configuration error: following would fail for ever
	}
	loop, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go f.follow(loop)
	return nil
}

// Close stops following the feed and waits for the follower to exit.
func (f *Feed) Close() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
}

// FirstRevoked returns the first of jtis the feed has reported revoked.
func (f *Feed) FirstRevoked(jtis []string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, j := range jtis {
		if _, ok := f.revoked[j]; ok {
			return j, true
		}
	}
	return "", false
}

// Current fails closed when the feed was last caught up longer than
// MaxStaleness ago. The times keep their monotonic reading (with the default
// clock), so a step of the wall clock cannot stretch the bound.
func (f *Feed) Current(now time.Time) error {
	last := f.lastSync.Load()
	if last == nil {
		return fmt.Errorf("%w: the revocation feed has never been synced", ErrStaleRevocations)
	}
	if age := now.Sub(*last); age > f.maxStaleness {
		return fmt.Errorf("%w: last synced %s ago (bound %s)", ErrStaleRevocations, age.Round(time.Second), f.maxStaleness)
	}
	return nil
}

// LastSync is when the feed last caught up (zero if never).
func (f *Feed) LastSync() time.Time {
	if t := f.lastSync.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Sync polls the feed without waiting, page after page until caught up, and
// applies what it returns.
func (f *Feed) Sync(ctx context.Context) error {
	for {
		more, _, err := f.poll(ctx, 0)
		if err != nil || !more {
			return err
		}
	}
}

// follow long-polls the feed until ctx ends, backing off after failures.
// After a failure, or while catching up on pages, the next poll does not
// wait, so a verifier that went stale is fresh again as soon as Mandate
// answers. A quiet answer that came back at once (a proxy that ignores wait)
// is followed by a short pause, never a busy loop.
func (f *Feed) follow(ctx context.Context) {
	defer close(f.done)
	const retryMin, minInterval = 50 * time.Millisecond, 100 * time.Millisecond
	backoff := retryMin
	var (
		err     error
		more    bool
		entries int
	)
	for {
		wait := f.wait
		if err != nil || more || f.lastSync.Load() == nil {
			wait = 0
		}
		started := time.Now()
		more, entries, err = f.poll(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		if f.afterPoll != nil {
			f.afterPoll(ctx) // before OnSync, so a reported sync includes it
		}
		if f.onSync != nil && !more {
			f.onSync(err)
		}
		pause := time.Duration(0)
		switch {
		case err != nil:
			pause, backoff = backoff, min(2*backoff, f.retryMax)
		case wait > 0 && entries == 0 && time.Since(started) < minInterval:
			pause, backoff = minInterval-time.Since(started), retryMin
		default:
			backoff = retryMin
		}
		if pause > 0 && !sleep(ctx, pause) {
			return
		}
	}
}

// sleep waits for d or until ctx ends, reporting whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// feedEntry is one revocation of a feed answer: the jti and its token's exp.
type feedEntry struct {
	JTI string
	Exp int64
}

// feedAnswer is one page of the revocation feed. It is read by the one
// grammar every Mandate verifier shares (testdata/vectors/README.md, "Feed
// files"): members by their exact names, unknown ones ignored, a member's
// wrong type refusing the whole page.
type feedAnswer struct {
	Revocations []feedEntry
	Cursor      string
	Reset       bool
	More        bool
	RevokedKeys []string
}

// UnmarshalJSON reads a feed page: an object with a non-empty string
// cursor; revocations absent, null or an array of objects with a non-empty
// string jti and an exp read as a token's exp is (jwt.NumericDate: a number
// within ±2^53, a fraction read as its whole second; here never zero or null); more and reset
// absent, null or booleans; revoked_keys absent, null or an array of
// strings. Names are matched exactly (encoding/json alone would also fill
// Cursor from "CURSOR"), so Go reads a page as Python and TypeScript do; a
// page that breaks the grammar is refused whole, and nothing of it applies.
func (a *feedAnswer) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return errors.New("the answer is not a JSON object")
	}
	*a = feedAnswer{}
	if err := json.Unmarshal(m["cursor"], &a.Cursor); m["cursor"] == nil || err != nil || a.Cursor == "" {
		return errors.New("the answer has no cursor (a non-empty string)")
	}
	for name, dst := range map[string]*bool{"more": &a.More, "reset": &a.Reset} {
		if raw, ok := m[name]; ok && json.Unmarshal(raw, dst) != nil {
			return fmt.Errorf("%s is not a boolean", name)
		}
	}
	if raw, ok := m["revoked_keys"]; ok {
		var kids []*string // a null inside would otherwise read as ""
		if json.Unmarshal(raw, &kids) != nil {
			return errors.New("revoked_keys is not an array of strings")
		}
		for _, k := range kids {
			if k == nil {
				return errors.New("revoked_keys is not an array of strings")
			}
			a.RevokedKeys = append(a.RevokedKeys, *k)
		}
	}
	var entries []map[string]json.RawMessage
	if raw, ok := m["revocations"]; ok && json.Unmarshal(raw, &entries) != nil {
		return errors.New("revocations is not an array of objects")
	}
	a.Revocations = make([]feedEntry, 0, len(entries))
	for i, e := range entries {
		var r feedEntry
		if err := json.Unmarshal(e["jti"], &r.JTI); e["jti"] == nil || err != nil || r.JTI == "" {
			return fmt.Errorf("revocations[%d]: no jti (a non-empty string)", i)
		}
		var exp jwt.NumericDate
		if err := json.Unmarshal(e["exp"], &exp); err != nil || exp.IsZero() {
			return fmt.Errorf("revocations[%d]: exp is not a NumericDate (a number within ±2^53, not zero)", i)
		}
		r.Exp = int64(exp)
		a.Revocations = append(a.Revocations, r)
	}
	return nil
}

// poll asks the feed once and applies the answer; more says another page is
// waiting, entries how many revocations the answer carried.
func (f *Feed) poll(ctx context.Context, wait time.Duration) (more bool, entries int, err error) {
	f.mu.RLock()
	cursor := f.cursor
	f.mu.RUnlock()
	q := url.Values{}
	if cursor != "" {
		q.Set("since", cursor)
	}
	if wait > 0 {
		q.Set("wait", fmt.Sprint(int(wait/time.Second)))
	}
	ctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()
	var a feedAnswer
	if err := getJSON(ctx, f.http, f.url+"?"+q.Encode(), &f.auth, maxFeedAnswer, &a); err != nil {
		return false, 0, fmt.Errorf("revocation feed: %w", err)
	}
	if len(a.RevokedKeys) > 0 && f.onRevokedKeys != nil {
		f.onRevokedKeys(a.RevokedKeys) // before the revocations apply: a sync includes it
	}
	f.apply(cursor, &a, f.now())
	return a.More, len(a.Revocations), nil
}

// apply merges a feed answer fetched from cursor into the revoked set. It
// only ever adds: a reset (the server could not serve the cursor, say after a
// restore from backup) does not make the feed forget a revocation, since
// revocations are permanent. If another poll (a Sync beside the follower)
// applied first, this answer may be older than what it applied, so it is
// dropped: the next poll, from the newer cursor, brings anything this one
// had. The feed counts as synced only once it has caught up (no More).
// Entries past exp+leeway, whose tokens are refused anyway, are pruned every
// half minute.
func (f *Feed) apply(cursor string, a *feedAnswer, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cursor != cursor {
		return
	}
	for _, r := range a.Revocations {
		f.revoked[r.JTI] = r.Exp
	}
	if now.Sub(f.lastPrune) > 30*time.Second {
		for jti, exp := range f.revoked {
			if exp+int64(f.leeway/time.Second) < now.Unix() {
				delete(f.revoked, jti)
			}
		}
		f.lastPrune = now
	}
	f.cursor = a.Cursor
	if !a.More {
		f.lastSync.Store(&now)
	}
}
