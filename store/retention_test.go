package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/store"
)

func TestRetentionRules(t *testing.T) {
	r := store.Retention{Tokens: time.Hour, Revocations: time.Minute, Audit: 24 * time.Hour}
	now := t0.Add(2 * time.Hour)
	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"token expired exactly retention ago", r.CollectsToken(now.Add(-time.Hour), now), true},
		{"token expired a second less", r.CollectsToken(now.Add(-time.Hour+time.Second), now), false},
		{"token expiring within the same second (whole seconds)", r.CollectsToken(now.Add(-time.Hour+time.Second/2), now), true},
		{"revocation at the end of its grace", r.CollectsRevocation(now.Add(-time.Minute), now), true},
		{"revocation within its grace", r.CollectsRevocation(now.Add(-59*time.Second), now), false},
		{"audit written just before the cutoff", r.CollectsAudit(now.Add(-24*time.Hour-time.Nanosecond), now), true},
		{"audit written at the cutoff", r.CollectsAudit(now.Add(-24*time.Hour), now), false},
		{"audit with no audit retention", store.Retention{}.CollectsAudit(t0, t0.Add(1000*time.Hour)), false},
		{"token with no retention, at expiry", store.Retention{}.CollectsToken(now, now), true},
	} {
		if c.got != c.want {
			t.Errorf("%s: collected %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := r.TokenCutoff(now); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("token cutoff %s", got)
	}
	if got := r.RevocationCutoff(now); !got.Equal(now.Add(-time.Minute)) {
		t.Errorf("revocation cutoff %s", got)
	}
	if got, ok := r.AuditCutoff(now); !ok || !got.Equal(now.Add(-24*time.Hour)) {
		t.Errorf("audit cutoff %s %v", got, ok)
	}
	if _, ok := (store.Retention{}).AuditCutoff(now); ok {
		t.Error("zero audit retention has a cutoff")
	}
}

type countingCollector struct{ passes chan time.Time }

func (c countingCollector) GC(now time.Time) (store.GCResult, error) {
	c.passes <- now
	return store.GCResult{Tokens: 1}, errors.New("disk on fire")
}

func TestRunGC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := countingCollector{passes: make(chan time.Time, 1)}
	reports := make(chan error, 10)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		store.RunGC(ctx, c, time.Millisecond, func() time.Time { return t0 }, func(r store.GCResult, err error) {
			if r.Tokens == 1 {
				select {
				case reports <- err:
				default:
				}
			}
		})
	}()
	if now := <-c.passes; !now.Equal(t0) {
		t.Errorf("GC at %s", now)
	}
	if err := <-reports; err == nil {
		t.Error("the pass's error was not reported")
	}
	cancel()
	for {
		select {
		case <-c.passes:
		case <-stopped:
			return
		}
	}
}
