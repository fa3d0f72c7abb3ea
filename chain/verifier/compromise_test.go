package verifier_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/store"
)

// TestACompromisedKeyIsDroppedEverywhereAtOnce: after an emergency
// rotation, Mandate accepts nothing the old key signed (introspection,
// exchange), a verifier that cached a token of it refuses it as soon as the
// feed says so — not at its next JWKS refresh — and the new key signs at
// once. The audit trail says who and why.
func TestACompromisedKeyIsDroppedEverywhereAtOnce(t *testing.T) {
	r := newRig(t, func(c *verifier.Config) { c.JWKSMaxAge = time.Hour })
	env := r.env
	ctx := context.Background()
	_, _, grand := chainOf(t, env)
	old := env.Keys.CurrentKeyID()
	if _, err := r.v.Verify(ctx, grand); err != nil {
		t.Fatal(err) // cached now
	}
	// The token endpoint has verified it too (and cached the verification).
	if i := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {grand}}); i.JSON["active"] != true {
		t.Fatalf("introspection before the rotation: %s", i.Raw)
	}
	newKey, gone, err := env.Svc.RotateCompromisedKey(ctx, "ops", "", "", "the key file was in a leaked backup")
	if err != nil || gone != old {
		t.Fatalf("rotate: %v (withdrew %q, want %q)", err, gone, old)
	}
	if env.Keys.CurrentKeyID() != newKey.ID {
		t.Fatal("the new key does not sign at once")
	}
	if strings.Contains(string(env.Keys.JWKS()), old) {
		t.Error("the compromised key is still published")
	}
	// Mandate accepts nothing the old key signed.
	if i := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {grand}}); i.JSON["active"] != false {
		t.Errorf("introspection of a token of the compromised key: %s", i.Raw)
	}
	if x := env.Exchange(t, "db-agent", grand, "", nil); x.Status != 400 || !strings.Contains(x.String("error_description"), "unknown signing key") {
		t.Errorf("exchange of a token of the compromised key: %d %s", x.Status, x.Raw)
	}
	// The verifier drops it from the feed's revoked_keys, cached token and all.
	r.until(t, 5*time.Second, func() bool {
		_, err := r.v.Verify(ctx, grand)
		return errors.Is(err, verifier.ErrInvalidSignature)
	})
	fresh := env.Mint(t, "db-agent", nil)
	if _, err := r.v.Verify(ctx, fresh); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
	keys, _ := env.Svc.Keys()
	for _, k := range keys {
		if k.ID == old && k.Status != "compromised" {
			t.Errorf("the old key's status is %q", k.Status)
		}
	}
	stored, _ := env.DB.SigningKeys(ctx)
	for _, k := range stored {
		if k.ID == old && (!k.Destroyed() || k.CompromisedAt.IsZero()) {
			t.Error("the compromised key's private part is still in the data file")
		}
	}
	recs, _ := env.DB.AuditTail(ctx, 20)
	if !slices.ContainsFunc(recs, func(r store.AuditRecord) bool {
		return r.Type == store.AuditKeyRotated && r.Client == "ops" && strings.Contains(r.Reason, "leaked backup") && strings.Contains(r.Reason, old)
	}) {
		t.Error("no audit record of the emergency rotation, its operator and its reason")
	}
}

// TestACachedVerificationEndsWithItsKey: a token the token endpoint verified
// (and cached) is refused once its key is withdrawn by any path — here the
// key ring itself, as another replica sharing the store would see it — and
// so is a delegation from it: the cache is trusted only while the key that
// signed the token still verifies.
func TestACachedVerificationEndsWithItsKey(t *testing.T) {
	r := newRig(t, nil)
	env := r.env
	_, child, grand := chainOf(t, env)
	for _, tok := range []string{child, grand} {
		if i := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {tok}}); i.JSON["active"] != true {
			t.Fatalf("introspection before the withdrawal: %s", i.Raw)
		}
	}
	if _, _, err := env.Keys.RotateCompromised(t.Context(), env.DB, "", ""); err != nil {
		t.Fatal(err)
	}
	if i := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {grand}}); i.JSON["active"] != false {
		t.Errorf("a cached token of a withdrawn key is still active: %s", i.Raw)
	}
	if x := env.Exchange(t, "researcher", child, "", url.Values{"scope": {"db:read:orders"}}); x.Status != 400 || !strings.Contains(x.String("error_description"), "unknown signing key") {
		t.Errorf("delegation from a cached token of a withdrawn key: %d %s", x.Status, x.Raw)
	}
}
