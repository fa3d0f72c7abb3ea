package tokens_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens"
)

func TestVerifiedCache(t *testing.T) {
	c := tokens.NewVerifiedCache[int](8, 0)
	c.Put("a", 1, now.Add(time.Minute), now)
	if v, ok := c.Get("a", now); !ok || v != 1 {
		t.Fatalf("get: %v %v", v, ok)
	}
	if _, ok := c.Get("a", now.Add(time.Minute)); ok {
		t.Error("an entry was returned at its expiry")
	}
	c.Put("dead", 2, now, now)
	if c.Len() != 1 {
		t.Error("an already expired entry was stored")
	}
	for i := range 100 {
		c.Put(fmt.Sprint(i), i, now.Add(time.Hour), now)
	}
	if n := c.Len(); n > 8 {
		t.Errorf("%d entries in a cache of 8", n)
	}
	c.Clear()
	if c.Len() != 0 {
		t.Error("clear left entries")
	}
	off := tokens.NewVerifiedCache[int](0, 0)
	off.Put("a", 1, now.Add(time.Hour), now)
	if _, ok := off.Get("a", now); ok {
		t.Error("a disabled cache remembered")
	}
	var nilCache *tokens.VerifiedCache[int]
	if _, ok := nilCache.Get("a", now); ok || nilCache.Len() != 0 {
		t.Error("a nil cache remembered")
	}
}

// TestVerifiedCacheIsBoundedByBytes: large tokens are counted by their
// size, so the cache's memory stays under its bound whatever the tokens.
func TestVerifiedCacheIsBoundedByBytes(t *testing.T) {
	const bound = 256 << 10
	c := tokens.NewVerifiedCache[int](10000, bound)
	big := strings.Repeat("x", 4<<10)
	for i := range 200 {
		c.Put(fmt.Sprint(i, big), i, now.Add(time.Hour), now)
		if c.Bytes() > bound {
			t.Fatalf("after %d entries the cache holds %d bytes, bound %d", i+1, c.Bytes(), bound)
		}
	}
	if c.Len() == 0 || c.Len() > bound/(8<<10) {
		t.Errorf("%d entries of 8 KiB each in %d bytes", c.Len(), bound)
	}
	c.Put("huge"+strings.Repeat("y", bound/8), 1, now.Add(time.Hour), now)
	if _, ok := c.Get("huge"+strings.Repeat("y", bound/8), now); ok {
		t.Error("one entry took more than an eighth of the room")
	}
	c.Clear()
	if c.Bytes() != 0 {
		t.Errorf("cleared cache holds %d bytes", c.Bytes())
	}
}
