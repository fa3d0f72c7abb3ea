package tokens_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens"
)

// TestReloadFollowsAnotherRing: two rings on one key store (replicas on one
// database) sign with the same key; a rotation through one is published by
// the other once it reloads, and signs there only from its activation; a
// key the first withdraws (an emergency rotation) or destroys (retired) is
// withdrawn or dropped by the other on reload, which reports what it
// withdrew. Rings that started at once pick the same key.
func TestReloadFollowsAnotherRing(t *testing.T) {
	clock := now
	opts := tokens.KeyRingOptions{Alg: tokens.AlgEdDSA, Overlap: time.Minute, Now: func() time.Time { return clock }}
	ks := &tokens.MemoryKeyStore{}
	a, err := tokens.OpenKeyRing(t.Context(), ks, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokens.OpenKeyRing(t.Context(), ks, opts)
	if err != nil {
		t.Fatal(err)
	}
	old := a.CurrentKeyID()
	if b.CurrentKeyID() != old {
		t.Fatal("two rings on one store sign with different keys")
	}
	if w, err := b.Reload(t.Context(), ks); err != nil || w != nil {
		t.Fatalf("a reload with nothing new: %v %v", w, err)
	}

	nk, err := a.Rotate(t.Context(), ks, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.ResolveKey(nk.ID); ok {
		t.Fatal("b knows the key before reloading")
	}
	if w, err := b.Reload(t.Context(), ks); err != nil || len(w) != 0 {
		t.Fatalf("reload: %v %v", w, err)
	}
	if _, ok := b.ResolveKey(nk.ID); !ok || b.CurrentKeyID() != old {
		t.Fatalf("after reload: published %v, signing %s (want the old key until activation)", ok, b.CurrentKeyID())
	}
	clock = clock.Add(tokens.KeyActivationDelay)
	if a.CurrentKeyID() != nk.ID || b.CurrentKeyID() != nk.ID {
		t.Fatalf("at activation: a %s, b %s, want %s", a.CurrentKeyID(), b.CurrentKeyID(), nk.ID)
	}
	signed, _ := a.Sign(sampleClaims())
	if _, err := b.Verify(signed); err != nil {
		t.Fatalf("b verifies a's token: %v", err)
	}

	// The retired key's private part destroyed by a: b drops it.
	clock = clock.Add(2 * time.Minute)
	if done, err := a.Prune(t.Context(), ks); err != nil || !slices.Equal(done, []string{old}) {
		t.Fatalf("prune: %v %v", done, err)
	}
	if w, err := b.Reload(t.Context(), ks); err != nil || len(w) != 0 {
		t.Fatalf("reload after prune: %v %v", w, err)
	}
	if _, ok := b.ResolveKey(old); ok {
		t.Error("b still trusts the destroyed key")
	}

	// An emergency rotation through a: b withdraws the key at once.
	next, gone, err := a.RotateCompromised(t.Context(), ks, "", "")
	if err != nil || gone != nk.ID {
		t.Fatal(gone, err)
	}
	w, err := b.Reload(t.Context(), ks)
	if err != nil || !slices.Equal(w, []string{nk.ID}) {
		t.Fatalf("reload after the emergency: withdrew %v, %v", w, err)
	}
	if _, err := b.Verify(signed); !errors.Is(err, tokens.ErrUnknownKey) {
		t.Errorf("b verifies a token of the withdrawn key: %v", err)
	}
	if b.CurrentKeyID() != next.ID || !slices.Contains(b.CompromisedKeys(), nk.ID) {
		t.Errorf("b signs with %s (want %s), compromised %v", b.CurrentKeyID(), next.ID, b.CompromisedKeys())
	}

	// Two rings starting at once on an empty store each make a key (at
	// the same instant); once both reloaded, they sign with the same one.
	empty := &tokens.MemoryKeyStore{}
	c, err := tokens.OpenKeyRing(t.Context(), empty, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tokens.OpenKeyRing(t.Context(), blindOnce{KeyStore: empty}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.CurrentKeyID() == d.CurrentKeyID() {
		t.Fatal("the race was not staged: one key")
	}
	for _, r := range []*tokens.KeyRing{c, d} {
		if _, err := r.Reload(t.Context(), empty); err != nil {
			t.Fatal(err)
		}
	}
	if c.CurrentKeyID() != d.CurrentKeyID() {
		t.Errorf("after reloading, rings that started at once sign with %s and %s", c.CurrentKeyID(), d.CurrentKeyID())
	}
}

// blindOnce is a key store that reads no key (writes go through), for the
// one reading a ring makes as it opens: a ring that starts while another's
// first key is not yet committed.
type blindOnce struct {
	tokens.KeyStore
}

func (b blindOnce) SigningKeys(ctx context.Context) ([]tokens.StoredKey, error) {
	return nil, nil
}
