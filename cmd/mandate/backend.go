package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/httpapi"
	"github.com/mandate-auth/mandate/store"
	"github.com/mandate-auth/mandate/store/bolt"
	"github.com/mandate-auth/mandate/tokens"
)

// backend is what the operator commands work against: a running server's
// admin API, or a stopped server's data file opened read-only (--db).
type backend interface {
	Lineage(ctx context.Context, jti string) (*delegation.Lineage, error)
	ListTokens(ctx context.Context, f delegation.TokenFilter) (*delegation.TokenPage, error)
	Revoke(ctx context.Context, t delegation.RevokeTarget, reason string) (delegation.RevokeResult, error)
	Keys(ctx context.Context) ([]tokens.KeyInfo, error)
	// Rotate publishes a new key (alg "" keeps the current one's); an
	// emergency rotation (compromised) makes it sign at once and withdraws
	// the old one, returned as withdrawn.
	Rotate(ctx context.Context, alg string, compromised bool, kid, reason string) (newKid string, activates time.Time, withdrawn string, err error)
	Audit(ctx context.Context, after uint64, limit int, wait time.Duration) ([]store.AuditRecord, error)
	AuditTail(ctx context.Context, n int) ([]store.AuditRecord, error)
	VerifyAudit(ctx context.Context) (store.AuditReport, error)
	Close() error
}

// adminFlags are the connection flags of every operator command.
type adminFlags struct {
	server, clientID, clientSecret, db string
}

// register gives a reading command the connection flags: the server and
// admin credentials, or --db.
func (f *adminFlags) register(cmd *cobra.Command) {
	f.registerServer(cmd)
	cmd.PersistentFlags().StringVar(&f.db, "db", "", "read a stopped server's data file (or data_dir) instead, read-only, for forensics")
}

// registerWriter gives a command that writes (revoke, keys rotate) the
// server's connection flags only: --db, which only ever opens a file
// read-only, is not offered, and given all the same it is refused with
// errReadOnly (not cobra's "unknown flag"), so an operator learns why.
func (f *adminFlags) registerWriter(cmd *cobra.Command) {
	f.registerServer(cmd)
	cmd.PersistentFlags().StringVar(&f.db, "db", "", "refused: this command writes, and --db opens a file read-only")
	_ = cmd.PersistentFlags().MarkHidden("db") // the flag exists: MarkHidden cannot fail
}

func (f *adminFlags) registerServer(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "server URL (env MANDATE_SERVER; default: issuer of --config)")
	cmd.PersistentFlags().StringVar(&f.clientID, "client-id", "", "admin client id (env MANDATE_CLIENT_ID)")
	cmd.PersistentFlags().StringVar(&f.clientSecret, "client-secret", "", "admin client secret (env MANDATE_CLIENT_SECRET; prefer the environment)")
}

// open picks the backend: --db, else the admin API of --server (flags, then
// MANDATE_* environment, then the issuer of --config).
func (f *adminFlags) open(cmd *cobra.Command) (backend, error) {
	if f.db != "" {
		return f.openFile(cmd)
	}
	conn, err := f.resolve(cmd)
	if err != nil {
		return nil, err
	}
	switch {
	case conn.base == "":
		return nil, errors.New("no server: give --server, MANDATE_SERVER or --config (or --db for a stopped server's file)")
	case conn.id == "" || conn.secret == "":
		return nil, errors.New("no admin credentials: set MANDATE_CLIENT_ID and MANDATE_CLIENT_SECRET (or --client-id/--client-secret)")
	}
	// No overall timeout: a revocation across a large store may take a while;
	// the operator interrupts with Ctrl-C (the command's context).
	return conn.backend(&http.Client{}), nil
}

// errDBIsPostgres refuses a --db that names a PostgreSQL database: --db is
// forensics on a stopped server's bbolt file, and a PostgreSQL store has no
// stopped state to read (its replicas serve it).
var errDBIsPostgres = errors.New("--db reads a stopped server's bbolt data file (or data_dir); it does not open PostgreSQL: ask a running replica's admin API with --server instead (its text is not repeated: it may hold a password)")

// looksLikeDSN reports whether a --db value that names no file is a
// PostgreSQL DSN (a postgres:// URL or key=value pairs).
func looksLikeDSN(v string) bool {
	if _, err := os.Stat(v); err == nil {
		return false
	}
	return strings.Contains(v, "://") || strings.Contains(v, "=")
}

// openFile opens --db read-only.
func (f *adminFlags) openFile(cmd *cobra.Command) (backend, error) {
	if looksLikeDSN(f.db) {
		return nil, errDBIsPostgres
	}
	db, err := bolt.OpenReadOnly(f.db)
	if err != nil {
		return nil, err
	}
	overlap := 16 * time.Minute
	if cfgPath, _ := cmd.Flags().GetString("config"); cfgPath != "" {
		if cfg, _, err := server.Load(cfgPath, nil); err == nil {
			overlap = server.KeyOverlap(cfg.Tokens.RootTTL)
		}
	}
	return &fileBackend{db: db, overlap: overlap, now: clockNow}, nil
}

// Where the server address came from, as messages name it.
const (
	sourceFlag   = "--server"
	sourceEnv    = "MANDATE_SERVER"
	sourceConfig = "the issuer of --config"
)

// connection is the server and admin credentials the flags, environment
// and configuration name.
type connection struct {
	// base is the server's URL without a trailing slash ("" when none);
	// source says where it came from (sourceFlag, sourceEnv, sourceConfig).
	base, source string
	// id and secret are the admin credentials ("" when not given).
	id, secret string
}

// backend is the admin API at the connection's server, through client.
func (c connection) backend(client *http.Client) *apiBackend {
	return &apiBackend{base: c.base, source: c.source, id: c.id, secret: c.secret, http: client}
}

// resolve finds the server (flags, then MANDATE_* environment, then the
// issuer of --config; "" when none) and the admin credentials ("" when not
// given). A server address that is not an http(s) URL, or that carries
// credentials, a query or a fragment, is an error.
func (f *adminFlags) resolve(cmd *cobra.Command) (connection, error) {
	pick := func(flag, env string) string {
		if flag != "" {
			return flag
		}
		return os.Getenv(env)
	}
	base, source := f.server, sourceFlag
	if base == "" {
		base, source = os.Getenv("MANDATE_SERVER"), sourceEnv
	}
	if base == "" {
		if cfgPath, _ := cmd.Flags().GetString("config"); cfgPath != "" {
			cfg, _, err := server.Load(cfgPath, nil)
			if err != nil {
				return connection{}, err
			}
			base, source = cfg.Issuer, sourceConfig
		}
	}
	if base != "" {
		if err := checkServerURL(source, base); err != nil {
			return connection{}, err
		}
	}
	return connection{base: strings.TrimSuffix(base, "/"), source: source,
		id: pick(f.clientID, "MANDATE_CLIENT_ID"), secret: pick(f.clientSecret, "MANDATE_CLIENT_SECRET")}, nil
}

// apiBackend talks to a running server's admin API.
type apiBackend struct {
	// base is the server's URL; source where it came from (for messages).
	base, source, id, secret string
	http                     *http.Client
}

func (b *apiBackend) Close() error { return nil }

// apiCall is one request to the admin API.
type apiCall struct {
	method string
	// endpoint is the API's path pattern (httpapi.PathAdmin*), named in
	// errors; path is the path sent, query included ("" : endpoint).
	endpoint, path string
	// aboutToken: the request names one token (a lineage, a revocation by
	// jti), so the API's not_found means there is no record of it.
	aboutToken bool
	body, out  any
}

// call sends c and decodes the answer into c.out. A 404 says the token is
// unknown only for a request about one token, and only when the API itself
// said so (its not_found, not a router's): any other 404 means the address
// is not Mandate's (a path or a proxy in front of it), and says so.
func (b *apiBackend) call(ctx context.Context, c apiCall) error {
	if c.path == "" {
		c.path = c.endpoint
	}
	var rd io.Reader
	if c.body != nil {
		raw, err := json.Marshal(c.body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, b.base+c.path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(url.QueryEscape(b.id), url.QueryEscape(b.secret))
	resp, err := b.http.Do(req)
	if err != nil {
		return transportError(b.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return json.Unmarshal(raw, c.out)
	case http.StatusUnauthorized:
		return errAdminCredentials
	case http.StatusForbidden:
		return &errNotAdmin{client: b.id}
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	isJSON := json.Unmarshal(raw, &e) == nil && e.Error != ""
	if resp.StatusCode == http.StatusNotFound {
		// The API's own not_found names what is missing; a router's (this
		// server's, for an unknown path, or a proxy's) says only "Not Found".
		if c.aboutToken && isJSON && e.Error == "not_found" && e.Description != http.StatusText(http.StatusNotFound) {
			return delegation.ErrUnknownToken // the caller names the jti (nameUnknown)
		}
		return &errNoEndpoint{base: b.base, source: b.source, endpoint: c.endpoint}
	}
	if !isJSON {
		return fmt.Errorf("%s: HTTP %d", c.endpoint, resp.StatusCode)
	}
	return fmt.Errorf("%s: %d %s: %s", c.endpoint, resp.StatusCode, e.Error, e.Description)
}

func (b *apiBackend) Lineage(ctx context.Context, jti string) (*delegation.Lineage, error) {
	var l delegation.Lineage
	return &l, b.call(ctx, apiCall{method: http.MethodGet, endpoint: httpapi.PathAdminLineage,
		path: strings.Replace(httpapi.PathAdminLineage, ":jti", url.PathEscape(jti), 1), aboutToken: true, out: &l})
}

func (b *apiBackend) ListTokens(ctx context.Context, f delegation.TokenFilter) (*delegation.TokenPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"holder": f.Holder, "sub": f.Subject, "sub_iss": f.SubjectIssuer, "root": f.Root, "after": f.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Active {
		q.Set("active", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var p delegation.TokenPage
	return &p, b.call(ctx, apiCall{method: http.MethodGet, endpoint: httpapi.PathAdminTokens, path: httpapi.PathAdminTokens + "?" + q.Encode(), out: &p})
}

func (b *apiBackend) Revoke(ctx context.Context, t delegation.RevokeTarget, reason string) (delegation.RevokeResult, error) {
	var r delegation.RevokeResult
	body := struct {
		delegation.RevokeTarget
		Reason string `json:"reason"`
	}{t, reason}
	aboutToken := t.JTI != "" || t.Root != "" || len(t.JTIs) > 0
	return r, b.call(ctx, apiCall{method: http.MethodPost, endpoint: httpapi.PathAdminRevoke, aboutToken: aboutToken, body: body, out: &r})
}

func (b *apiBackend) Keys(ctx context.Context) ([]tokens.KeyInfo, error) {
	var out struct {
		Keys []tokens.KeyInfo `json:"keys"`
	}
	return out.Keys, b.call(ctx, apiCall{method: http.MethodGet, endpoint: httpapi.PathAdminKeys, out: &out})
}

func (b *apiBackend) Rotate(ctx context.Context, alg string, compromised bool, kid, reason string) (string, time.Time, string, error) {
	var out struct {
		KID         string    `json:"kid"`
		ActivatesAt time.Time `json:"activates_at"`
		Withdrawn   string    `json:"withdrawn"`
	}
	err := b.call(ctx, apiCall{method: http.MethodPost, endpoint: httpapi.PathAdminKeysRotate,
		body: map[string]any{"alg": alg, "compromised": compromised, "kid": kid, "reason": reason}, out: &out})
	return out.KID, out.ActivatesAt, out.Withdrawn, err
}

func (b *apiBackend) Audit(ctx context.Context, after uint64, limit int, wait time.Duration) ([]store.AuditRecord, error) {
	var out struct {
		Records []store.AuditRecord `json:"records"`
	}
	path := fmt.Sprintf("%s?after=%d&limit=%d&wait=%d", httpapi.PathAdminAudit, after, limit, int(wait/time.Second))
	return out.Records, b.call(ctx, apiCall{method: http.MethodGet, endpoint: httpapi.PathAdminAudit, path: path, out: &out})
}

func (b *apiBackend) AuditTail(ctx context.Context, n int) ([]store.AuditRecord, error) {
	var out struct {
		Records []store.AuditRecord `json:"records"`
	}
	return out.Records, b.call(ctx, apiCall{method: http.MethodGet, endpoint: httpapi.PathAdminAudit, path: fmt.Sprintf("%s?tail=%d", httpapi.PathAdminAudit, n), out: &out})
}

func (b *apiBackend) VerifyAudit(ctx context.Context) (store.AuditReport, error) {
	var r store.AuditReport
	return r, b.call(ctx, apiCall{method: http.MethodGet, endpoint: httpapi.PathAdminAuditVerify, out: &r})
}

// fileBackend reads a stopped server's data file; it never writes.
type fileBackend struct {
	db      *bolt.DB
	overlap time.Duration
	now     func() time.Time
}

var errReadOnly = errors.New("--db opens the data file read-only, for forensics; use --server to revoke or rotate")

func (b *fileBackend) Close() error { return b.db.Close() }

func (b *fileBackend) Lineage(ctx context.Context, jti string) (*delegation.Lineage, error) {
	return delegation.LineageOf(ctx, b.db, jti, b.now())
}

func (b *fileBackend) ListTokens(ctx context.Context, f delegation.TokenFilter) (*delegation.TokenPage, error) {
	return delegation.ListTokens(ctx, b.db, f, b.now())
}

func (b *fileBackend) Revoke(context.Context, delegation.RevokeTarget, string) (delegation.RevokeResult, error) {
	return delegation.RevokeResult{}, errReadOnly
}

func (b *fileBackend) Keys(ctx context.Context) ([]tokens.KeyInfo, error) {
	stored, err := b.db.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	return tokens.DescribeKeys(stored, b.overlap, b.now()), nil
}

func (b *fileBackend) Rotate(context.Context, string, bool, string, string) (string, time.Time, string, error) {
	return "", time.Time{}, "", errReadOnly
}

func (b *fileBackend) Audit(ctx context.Context, after uint64, limit int, _ time.Duration) ([]store.AuditRecord, error) {
	return b.db.AuditAfter(ctx, after, limit)
}

func (b *fileBackend) AuditTail(ctx context.Context, n int) ([]store.AuditRecord, error) {
	return b.db.AuditTail(ctx, n)
}

func (b *fileBackend) VerifyAudit(ctx context.Context) (store.AuditReport, error) {
	return b.db.VerifyAudit(ctx)
}
