package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/mandate-auth/mandate/delegation/oauth"
)

// RateLimit bounds how often each authenticated client may call Mandate: a
// token bucket per client id refilling at PerSecond, holding Burst. A client
// over its limit is answered 429 slow_down with Retry-After, so one runaway
// agent cannot starve the others.
type RateLimit struct {
	PerSecond float64 // 0 disables limiting
	Burst     int     // at least 1
	// RevocationPerSecond and RevocationBurst are the separate budget of
	// revocation (RFC 7009), the admin API and the revocation feed (default
	// RevocationFactor times the grants'): a client that has spent its
	// grants' budget in a runaway loop can still revoke its own task, and an
	// operator can still stop it.
	RevocationPerSecond float64
	RevocationBurst     int
}

// RevocationFactor is how many times the grants' budget revocation gets
// when its own is not set.
const RevocationFactor = 10

// revocationBudget is the budget of the revocation class: its own, or
// RevocationFactor times the grants'.
func (r RateLimit) revocationBudget() RateLimit {
	if r.RevocationPerSecond > 0 {
		return RateLimit{PerSecond: r.RevocationPerSecond, Burst: max(r.RevocationBurst, 1)}
	}
	return RateLimit{PerSecond: r.PerSecond * RevocationFactor, Burst: r.Burst * RevocationFactor}
}

// limiters holds one token bucket per client id. Only authenticated clients
// get one, so the map is bounded by the registry.
type limiters struct {
	cfg RateLimit
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*rate.Limiter
}

func newLimiters(cfg RateLimit, now func() time.Time) *limiters {
	if cfg.PerSecond <= 0 {
		return nil
	}
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	if now == nil {
		now = time.Now
	}
	return &limiters{cfg: cfg, now: now, m: map[string]*rate.Limiter{}}
}

// wait reports how long client must wait before its next request is
// admitted (0: admitted now, and counted).
func (l *limiters) wait(client string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	lim, ok := l.m[client]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.cfg.PerSecond), l.cfg.Burst)
		l.m[client] = lim
	}
	l.mu.Unlock()
	now := l.now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// errSlowDown is the answer to a client over its rate limit (the
// slow_down code of the OAuth error registry, RFC 8628 §3.5).
func errSlowDown(c echo.Context, d time.Duration) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	return oauth.New("slow_down", "rate limit exceeded: retry in %s", d.Round(time.Millisecond)).WithStatus(http.StatusTooManyRequests)
}
