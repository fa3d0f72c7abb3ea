package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channels other replicas are notified on (LISTEN/NOTIFY), each in the
// transaction of the write it announces, so a notification is delivered
// when, and only if, that write commits.
const (
	// ChannelRevocations carries the revocation log's new head (its Seq).
	ChannelRevocations = "mandate_revocations"
	// ChannelSigningKeys carries the kid of a signing key added or replaced.
	ChannelSigningKeys = "mandate_signing_keys"
	// ChannelSuspensions carries the client a suspension was recorded for.
	ChannelSuspensions = "mandate_suspensions"
)

// Events are what Listen reports, each called from the listener's one
// goroutine (so quick, or handing the work on), and each optional.
type Events struct {
	// Revocations: a revocation committed, through any replica; or the
	// listener connected, or lost its connection — notifications may have
	// been missed, so whoever waits on the log reads it again from its
	// cursor (and finds the store unavailable, if it is).
	Revocations func()
	// SigningKeys: the stored signing keys changed, or may have (the
	// listener connected: read them again).
	SigningKeys func()
	// Suspensions: a suspension was recorded, or may have been.
	Suspensions func()
	// Connection reports the listener's connection: up once it listens,
	// down (with why) when it lost it; it then retries, backing off to
	// ListenRetryMax.
	Connection func(up bool, err error)
}

// ListenRetryMax bounds the wait between the listener's attempts to
// reconnect.
const ListenRetryMax = 2 * time.Second

// Listen follows the channels other replicas notify, on a connection of
// its own, until ctx ends or the store is closed: it returns at once. The
// connection is remade whenever it breaks; each time it is (re)made every
// event is reported once, since notifications sent while it was away are
// lost.
func (d *DB) Listen(ctx context.Context, ev Events) {
	ctx, cancel := context.WithCancel(ctx)
	d.listeners.Add(1)
	go func() {
		defer d.listeners.Done()
		select {
		case <-ctx.Done():
		case <-d.closing:
			cancel()
		}
	}()
	call := func(f func()) {
		if f != nil {
			f()
		}
	}
	d.listeners.Add(1)
	go func() {
		defer d.listeners.Done()
		defer cancel()
		cfg := d.pool.Config().ConnConfig
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			err := d.listenOnce(ctx, cfg, func() {
				backoff = 50 * time.Millisecond
				if ev.Connection != nil {
					ev.Connection(true, nil)
				}
				call(ev.Revocations)
				call(ev.SigningKeys)
				call(ev.Suspensions)
			}, func(channel string) {
				switch channel {
				case ChannelRevocations:
					call(ev.Revocations)
				case ChannelSigningKeys:
					call(ev.SigningKeys)
				case ChannelSuspensions:
					call(ev.Suspensions)
				}
			})
			if ctx.Err() != nil {
				return
			}
			if ev.Connection != nil {
				ev.Connection(false, err)
			}
			call(ev.Revocations) // long polls read again: the store may be gone
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, ListenRetryMax)
		}
	}()
}

// listenOnce connects, listens on every channel, calls up, then hands each
// notification's channel to got until the connection breaks or ctx ends.
func (d *DB) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, up func(), got func(string)) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return scrub(errorf("store/postgres: listen: connect: %w", err), cfg.Password)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range []string{ChannelRevocations, ChannelSigningKeys, ChannelSuspensions} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return errorf("store/postgres: listen on %s: %w", ch, err)
		}
	}
	up()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return errorf("store/postgres: listen: %w", err)
		}
		got(n.Channel)
	}
}
