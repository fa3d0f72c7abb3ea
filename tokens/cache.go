package tokens

import (
	"sync"
	"time"
)

// VerifiedCache remembers what was verified about tokens, so a token shown
// again is not verified again: keyed by the token itself (only tokens that
// verified are stored, so keys are genuine tokens of bounded size), bounded
// in entries, and an entry is never returned after the expiry it was stored
// with.
// Callers still check what can change (revocation); what a signature proved
// cannot. A nil or zero-size cache remembers nothing.
type VerifiedCache[V any] struct {
	mu  sync.RWMutex
	max int
	m   map[string]cached[V]
}

type cached[V any] struct {
	v   V
	exp time.Time
}

// NewVerifiedCache makes a cache of at most max entries (0: none).
func NewVerifiedCache[V any](max int) *VerifiedCache[V] {
	if max <= 0 {
		return &VerifiedCache[V]{}
	}
	return &VerifiedCache[V]{max: max, m: make(map[string]cached[V], min(max, 1024))}
}

// Get returns what was stored for token, unless it has expired at now.
func (c *VerifiedCache[V]) Get(token string, now time.Time) (V, bool) {
	var zero V
	if c == nil || c.max <= 0 {
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		return zero, false
	}
	return e.v, true
}

// Put stores v for token until exp. When full it first drops expired
// entries, then an arbitrary eighth (Go's map order is random enough that
// hot entries are simply verified again and re-added).
func (c *VerifiedCache[V]) Put(token string, v V, exp, now time.Time) {
	if c == nil || c.max <= 0 || !now.Before(exp) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[token] = cached[V]{v, exp}
}

// Len is the number of entries.
func (c *VerifiedCache[V]) Len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// Clear drops every entry (after a key is withdrawn, say).
func (c *VerifiedCache[V]) Clear() {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
