package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mandate-auth/mandate/tokens"
)

// RemoteOptions say where a workload issuer's keys are and how hard Mandate
// may pull on them.
type RemoteOptions struct {
	// Issuer is the issuer's URL; with Discovery, its OpenID configuration
	// (Issuer + "/.well-known/openid-configuration") names the JWKS, which
	// must be on the issuer's own origin.
	Issuer    string
	Discovery bool
	// JWKSURL is the key set's URL, when not discovered.
	JWKSURL string
	// HTTPClient makes the requests (default: a client with Timeout). Its
	// redirects are limited to the same origin whatever it says.
	HTTPClient *http.Client
	// MinRefresh is the least time between two fetches an unknown kid may
	// cause (default 5 s), so forged kids cannot make Mandate hammer the
	// issuer; MaxAge how long a fetched set is used before it is fetched
	// again anyway (default 10 min).
	MinRefresh, MaxAge time.Duration
	// Timeout bounds each fetch (default 5 s), MaxBytes each document
	// (default 1 MiB).
	Timeout  time.Duration
	MaxBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// RemoteKeys is a workload issuer's key set fetched over HTTP (a JWKS URL
// or OIDC discovery): cached, fetched again when older than MaxAge or on an
// unknown kid at most every MinRefresh, bounded in size and time, never
// following a redirect to another origin. It is a tokens.KeyResolver.
type RemoteKeys struct {
	o    RemoteOptions
	http *http.Client

	// fetchMu makes fetches one at a time, outside mu, so a slow issuer
	// holds up only the callers that need its new set, never lookups of
	// keys the cached set has. It guards jwksURL.
	fetchMu sync.Mutex
	jwksURL string

	mu      sync.Mutex
	set     *tokens.SetResolver
	fetched time.Time // when set was fetched
	tried   time.Time // the last fetch attempt
	lastErr error
}

var _ tokens.KeyResolver = (*RemoteKeys)(nil)

// NewRemoteKeys checks o (an https URL, or http on a loopback host for
// tests and sidecars) and returns the key set, unfetched: the first
// ResolveKey fetches it.
func NewRemoteKeys(o RemoteOptions) (*RemoteKeys, error) {
	if o.Discovery == (o.JWKSURL != "") {
		return nil, errors.New("workload: keys come from exactly one of a JWKS URL and discovery")
	}
	target := o.JWKSURL
	if o.Discovery {
		target = o.Issuer
	}
	if err := checkURL(target); err != nil {
		return nil, err
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = 5 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 10 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	hc := &http.Client{Timeout: o.Timeout}
	if o.HTTPClient != nil {
		c := *o.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 || req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
			return fmt.Errorf("workload: a redirect to %s://%s leaves the issuer's origin", req.URL.Scheme, req.URL.Host)
		}
		return nil
	}
	return &RemoteKeys{o: o, http: hc, jwksURL: o.JWKSURL}, nil
}

// checkURL accepts https, and http only on a loopback host.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("workload: %q is not an absolute URL without credentials", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("workload: %q must be https (http only on a loopback host)", raw)
}

// ResolveKey returns the key kid names, fetching the set when it is older
// than MaxAge or does not know kid (at most every MinRefresh). Lookups of
// keys the fresh cached set has never wait for a fetch.
func (r *RemoteKeys) ResolveKey(kid string) (tokens.PublicKey, bool) {
	r.mu.Lock()
	now := r.o.Now()
	fresh := r.set != nil && now.Sub(r.fetched) < r.o.MaxAge
	if fresh {
		if k, ok := r.set.ResolveKey(kid); ok {
			r.mu.Unlock()
			return k, true
		}
	}
	due := r.tried.IsZero() || now.Sub(r.tried) >= r.o.MinRefresh
	if due {
		r.tried = now // the other callers of this window do not fetch too
	}
	r.mu.Unlock()
	switch {
	case due:
		r.fetchMu.Lock()
		set, err := r.fetch()
		r.fetchMu.Unlock()
		r.mu.Lock()
		if err != nil {
			r.lastErr = err
		} else {
			r.set, r.fetched, r.lastErr = set, r.o.Now(), nil
		}
		r.mu.Unlock()
	case !fresh:
		// The set is too old to trust: wait for a fetch another caller
		// has under way (none: this returns at once) rather than refuse.
		r.fetchMu.Lock()
		r.fetchMu.Unlock() // an empty critical section: waiting is the point
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil || r.o.Now().Sub(r.fetched) >= r.o.MaxAge {
		return tokens.PublicKey{}, false // never fetched, or too old to trust
	}
	return r.set.ResolveKey(kid)
}

// Err is why the last fetch failed (nil after a success): a refusal for an
// unknown key says it, and the grant logs it.
func (r *RemoteKeys) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// fetch reads the key set (discovering its URL first when asked to).
func (r *RemoteKeys) fetch() (*tokens.SetResolver, error) {
	if r.jwksURL == "" {
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		doc, err := r.get(strings.TrimSuffix(r.o.Issuer, "/") + "/.well-known/openid-configuration")
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(doc, &md); err != nil {
			return nil, fmt.Errorf("workload: discovery document: %w", err)
		}
		if strings.TrimSuffix(md.Issuer, "/") != strings.TrimSuffix(r.o.Issuer, "/") {
			return nil, fmt.Errorf("workload: discovery names issuer %q, not %q", md.Issuer, r.o.Issuer)
		}
		iu, _ := url.Parse(r.o.Issuer)
		ju, err := url.Parse(md.JWKSURI)
		if err != nil || ju.Scheme != iu.Scheme || ju.Host != iu.Host {
			return nil, fmt.Errorf("workload: discovery's jwks_uri %q is not on the issuer's origin", md.JWKSURI)
		}
		r.jwksURL = md.JWKSURI
	}
	doc, err := r.get(r.jwksURL)
	if err != nil {
		return nil, err
	}
	set, err := tokens.NewSetResolver(doc)
	if err != nil {
		return nil, fmt.Errorf("workload: %s: %w", r.jwksURL, err)
	}
	return set, nil
}

// get fetches one document, bounded in size and time.
func (r *RemoteKeys) get(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.o.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("workload: %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("workload: %s: HTTP %d", u, resp.StatusCode)
	}
	if int64(len(body)) > r.o.MaxBytes {
		return nil, fmt.Errorf("workload: %s: larger than %d bytes", u, r.o.MaxBytes)
	}
	return body, nil
}
