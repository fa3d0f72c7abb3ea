package vectors

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/mandate-auth/mandate/chain/verifier"
)

// FeedFile is a revocation-feed vector file (testdata/vectors/README.md,
// "Feed files"): a feed follower's settings and cases, each a script of
// syncs (the pages Mandate's feed serves) and checks (what the follower
// then reports revoked, or stale).
type FeedFile struct {
	Comment             string     `json:"comment,omitempty"`
	LeewaySeconds       int64      `json:"leeway_seconds"`
	MaxStalenessSeconds int64      `json:"max_staleness_seconds"`
	Cases               []FeedCase `json:"cases"`
}

// FeedCase is one follower's life: its steps in order, and the verdict (each
// step's outcome, joined by "; ").
type FeedCase struct {
	Name   string     `json:"name"`
	Steps  []FeedStep `json:"steps"`
	Expect string     `json:"expect"`
}

// FeedStep is a sync (Sync: the pages the feed serves to one sync, in
// order) or a check (Check: jtis asked about), at a time (Unix seconds).
type FeedStep struct {
	At    int64      `json:"at"`
	Sync  []FeedPage `json:"sync,omitempty"`
	Check []string   `json:"check,omitempty"`
}

// FeedPage is one answer of the feed: the cursor the poll must send
// (Since: "" for none), the HTTP status and the body, verbatim.
type FeedPage struct {
	Since  string `json:"since"`
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// The outcomes of feed steps.
const (
	FeedSynced     = "synced"      // the sync caught up (a page without more)
	FeedFailed     = "failed"      // a poll of the sync failed (status, body)
	FeedWrongSince = "wrong_since" // a poll sent another cursor than the page's since
	FeedExtraPoll  = "extra_poll"  // the follower polled past the scripted pages
	FeedUnused     = "unused_pages"
	FeedOK         = "ok"    // a check: none of the jtis is revoked
	FeedStale      = "stale" // a check: the follower fails closed (never synced, or too long ago)
)

// scriptedFeed serves the pages of one sync step and records what the
// follower asked.
type scriptedFeed struct {
	mu    sync.Mutex
	pages []FeedPage
	next  int
	wrong bool
	extra bool
}

func (s *scriptedFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, ok := r.BasicAuth(); !ok {
		http.Error(w, "credentials required", http.StatusUnauthorized)
		return
	}
	if s.next >= len(s.pages) {
		s.extra = true
		http.Error(w, "no page scripted", http.StatusInternalServerError)
		return
	}
	p := s.pages[s.next]
	s.next++
	if r.URL.Query().Get("since") != p.Since {
		s.wrong = true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(p.Status)
	_, _ = w.Write([]byte(p.Body))
}

// RunFeed plays every case of f against a fresh follower (verifier.NewFeed)
// polling a scripted feed on a loopback server, its clock set to each
// step's time.
func RunFeed(f *FeedFile) ([]Result, error) {
	script := &scriptedFeed{}
	srv := httptest.NewServer(script)
	defer srv.Close()
	out := make([]Result, 0, len(f.Cases))
	for ci, c := range f.Cases {
		var now time.Time
		var dropped []string
		feed, err := verifier.NewFeed(verifier.Config{
			ClientID: "vectors", ClientSecret: "vectors-secret",
			Leeway: time.Duration(f.LeewaySeconds) * time.Second, MaxStaleness: time.Duration(f.MaxStalenessSeconds) * time.Second,
			Now: func() time.Time { return now },
		}, srv.URL+"/feed", func(kids []string) { dropped = append(dropped, kids...) })
		if err != nil {
			return nil, fmt.Errorf("vectors: %w", err)
		}
		outcomes := make([]string, 0, len(c.Steps))
		for si, st := range c.Steps {
			now = time.Unix(st.At, 0).UTC()
			switch {
			case st.Sync != nil && st.Check == nil:
				script.mu.Lock()
				script.pages, script.next, script.wrong, script.extra = st.Sync, 0, false, false
				script.mu.Unlock()
				dropped = nil
				err := feed.Sync(context.Background())
				script.mu.Lock()
				o := FeedSynced
				switch {
				case script.wrong:
					o = FeedWrongSince
				case script.extra:
					o = FeedExtraPoll
				case err != nil:
					o = FeedFailed
				case script.next < len(script.pages):
					o = FeedUnused
				}
				script.mu.Unlock()
				if len(dropped) > 0 {
					o += " dropped:" + strings.Join(dropped, ",")
				}
				outcomes = append(outcomes, o)
			case st.Check != nil && st.Sync == nil:
				o := FeedOK
				if feed.Current(now) != nil {
					o = FeedStale
				} else if jti, ok := feed.FirstRevoked(st.Check); ok {
					o = "revoked:" + jti
				}
				outcomes = append(outcomes, o)
			default:
				return nil, fmt.Errorf("vectors: cases[%d].steps[%d]: a step has either sync or check", ci, si)
			}
		}
		out = append(out, Result{Name: c.Name, Verdict: strings.Join(outcomes, "; ")})
	}
	return out, nil
}
