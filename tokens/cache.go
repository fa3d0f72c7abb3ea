package tokens

import (
	"sync"
	"time"
)

// VerifiedCache remembers what was verified about tokens, so a token shown
// again is not verified again: keyed by the token itself (only tokens that
// verified are stored, so keys are genuine tokens of bounded size), bounded
// in entries and in bytes, and an entry is never returned after the expiry
// it was stored with.
// Callers still check what can change (revocation); what a signature proved
// cannot. A nil or zero-size cache remembers nothing.
type VerifiedCache[V any] struct {
	mu       sync.RWMutex
	max      int
	maxBytes int64
	bytes    int64
	m        map[string]cached[V]
}

type cached[V any] struct {
	v    V
	exp  time.Time
	cost int64
}

// entryOverhead is what an entry costs besides its token: the decoded
// claims and the map's own bookkeeping, about the size of a short token.
const entryOverhead = 512

// DefaultCacheBytes bounds a verified-token cache's memory when its owner
// does not say: 10,000 ordinary tokens fit, 10,000 of the largest (16 KiB)
// do not.
const DefaultCacheBytes = 32 << 20

// NewVerifiedCache makes a cache of at most max entries (0: none) and about
// maxBytes of memory (DefaultCacheBytes when 0): an entry costs twice its
// token's length (the token and what was decoded from it) plus a fixed
// overhead.
func NewVerifiedCache[V any](max int, maxBytes int64) *VerifiedCache[V] {
	if max <= 0 {
		return &VerifiedCache[V]{}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &VerifiedCache[V]{max: max, maxBytes: maxBytes, m: make(map[string]cached[V], min(max, 1024))}
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

// Put stores v for token until exp. When full (in entries or bytes) it
// first drops expired entries, then arbitrary ones (Go's map order is random
// enough that hot entries are simply verified again and re-added) until an
// eighth of the room is free.
func (c *VerifiedCache[V]) Put(token string, v V, exp, now time.Time) {
	if c == nil || c.max <= 0 || !now.Before(exp) {
		return
	}
	cost := int64(2*len(token) + entryOverhead)
	if cost > c.maxBytes/8 {
		return // one entry may not take more than an eighth of the room
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[token]; ok {
		c.bytes -= old.cost
		delete(c.m, token)
	}
	if len(c.m) >= c.max || c.bytes+cost > c.maxBytes {
		for key, e := range c.m {
			if !now.Before(e.exp) {
				c.drop(key, e)
			}
		}
		for key, e := range c.m {
			if len(c.m) < c.max-c.max/8 && c.bytes+cost <= c.maxBytes-c.maxBytes/8 {
				break
			}
			c.drop(key, e)
		}
	}
	c.m[token] = cached[V]{v, exp, cost}
	c.bytes += cost
}

func (c *VerifiedCache[V]) drop(key string, e cached[V]) {
	delete(c.m, key)
	c.bytes -= e.cost
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

// Bytes is about how much memory the entries take (as Put counts it).
func (c *VerifiedCache[V]) Bytes() int64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes
}

// Clear drops every entry (after a key is withdrawn, say).
func (c *VerifiedCache[V]) Clear() {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.bytes = 0
	c.mu.Unlock()
}
