package delegationtest_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// watched is the token a benchmark waits to see refused, and when it was.
type watched struct {
	token   string
	refused time.Time
	done    chan struct{}
}

// BenchmarkPropagationAcrossReplicas measures how long a revocation made
// through replica A of a Mandate on PostgreSQL takes to reach a resource
// server's verifier (chain/verifier, Discover, long-polling the feed)
// following replica B; "same-replica" is the same with the verifier
// following A, for comparison. Each iteration mints a root at A, exchanges
// it at A for a token for the resource server, verifies that token (the
// verifier caches it), then revokes the root at A (RFC 7009) and waits until
// the verifier refuses the token: the time is taken in the verifier's
// OnSync, right after the feed answer that carried the revocation was
// applied. It reports the median, p99 and maximum from the revoke request
// being sent (A's commit included: the issue's "from the revoke on replica
// A") and the median and p99 from its answer (0 when the verifier refused
// the token before the answer reached the client). Run it with
// -benchtime 300x or more for a p99; ns/op is not reported.
func BenchmarkPropagationAcrossReplicas(b *testing.B) {
	for _, follow := range []string{"same-replica", "other-replica"} {
		b.Run(follow, func(b *testing.B) {
			dsn := pgtest.Need(b).NewDatabase(b)
			clock := dt.NewClock(dt.Start)
			opts := func(replica string) dt.Options {
				return dt.Options{Postgres: dsn, Replica: replica, Issuer: testIssuer, Clock: clock}
			}
			a := dt.New(b, opts("a"))
			followed := a
			if follow == "other-replica" {
				followed = dt.New(b, opts("b"))
			}

			// The verifier reaches the issuer's URLs (testIssuer, shared by
			// the replicas) at the followed replica's address.
			addr := strings.TrimPrefix(followed.Base, "http://")
			var dialer net.Dialer
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			}}}
			var (
				v     *verifier.Verifier
				watch atomic.Pointer[watched]
			)
			v, err := verifier.Discover(context.Background(), verifier.Config{
				Issuer: testIssuer, Audience: "https://db.example",
				ClientID: "no-grants-rs", ClientSecret: dt.Secret("no-grants-rs"),
				HTTPClient: hc, Now: clock.Now,
				OnSync: func(err error) {
					w := watch.Load() // nil until v is set
					if err != nil || w == nil {
						return
					}
					if _, err := v.Verify(context.Background(), w.token); errors.Is(err, verifier.ErrRevoked) && w.refused.IsZero() {
						w.refused = time.Now()
						close(w.done)
					}
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(v.Close)

			ctx := context.Background()
			var fromSend, fromAnswer []time.Duration
			for b.Loop() {
				root := a.Mint(b, "orchestrator", nil)
				token := a.Delegate(b, "orchestrator", root, "researcher",
					url.Values{"scope": {"db:read:orders"}, "audience": {"https://db.example"}})
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
				w := &watched{token: token, done: make(chan struct{})}
				watch.Store(w)
				sent := time.Now()
				a.Revoke(b, "orchestrator", root)
				answered := time.Now()
				select {
				case <-w.done:
				case <-time.After(10 * time.Second):
					b.Fatalf("the verifier still accepts the token 10s after its root was revoked")
				}
				watch.Store(nil)
				fromSend = append(fromSend, w.refused.Sub(sent))
				fromAnswer = append(fromAnswer, max(0, w.refused.Sub(answered)))
			}
			slices.Sort(fromSend)
			slices.Sort(fromAnswer)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			at := func(ds []time.Duration, p int) float64 { return ms(ds[min(len(ds)-1, len(ds)*p/100)]) }
			b.ReportMetric(at(fromSend, 50), "p50-ms")
			b.ReportMetric(at(fromSend, 99), "p99-ms")
			b.ReportMetric(ms(fromSend[len(fromSend)-1]), "max-ms")
			b.ReportMetric(at(fromAnswer, 50), "p50-after-answer-ms")
			b.ReportMetric(at(fromAnswer, 99), "p99-after-answer-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
