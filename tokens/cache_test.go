package tokens_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens"
)

func TestVerifiedCache(t *testing.T) {
	c := tokens.NewVerifiedCache[int](8)
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
	off := tokens.NewVerifiedCache[int](0)
	off.Put("a", 1, now.Add(time.Hour), now)
	if _, ok := off.Get("a", now); ok {
		t.Error("a disabled cache remembered")
	}
	var nilCache *tokens.VerifiedCache[int]
	if _, ok := nilCache.Get("a", now); ok || nilCache.Len() != 0 {
		t.Error("a nil cache remembered")
	}
}
