package chain

import (
	"sync"
	"time"
)

// claimCache keeps verified chains by token, bounded in entries; an entry
// leaves when its token expires (checked on every hit) or to make room.
type claimCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]*Chain
}

func newClaimCache(max int) *claimCache {
	if max < 0 {
		return &claimCache{}
	}
	return &claimCache{max: max, m: make(map[string]*Chain, min(max, 1024))}
}

func (c *claimCache) get(token string) *Chain {
	if c.max <= 0 {
		return nil
	}
	c.mu.RLock()
	ch := c.m[token]
	c.mu.RUnlock()
	return ch
}

// put adds a chain; when full it first drops expired entries, then, if still
// full, an arbitrary eighth of the cache (Go's map order is random enough
// that hot entries are simply re-verified and re-added).
func (c *claimCache) put(token string, ch *Chain, now time.Time) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, v := range c.m {
			if !now.Before(v.Expiry) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[token] = ch
}

func (c *claimCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// clear drops every entry.
func (c *claimCache) clear() {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
