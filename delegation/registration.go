package delegation

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens"
)

// Role is what a client may do besides obtaining tokens.
type Role string

// Client roles. A plain client (RoleAgent) obtains and exchanges tokens; a
// resource server also introspects (and reads the revocation feed); an admin may
// do everything, including revoking any token.
const (
	RoleAgent          Role = ""
	RoleResourceServer Role = "resource_server"
	RoleAdmin          Role = "admin"
)

// Secret checks a presented client secret. Implementations must compare in
// constant time with respect to the secret's content.
type Secret interface {
	Check(presented string) bool
}

// BcryptSecret is a secret stored as a bcrypt hash, the form the config file
// holds ("mandate hash-secret" prints one).
type BcryptSecret []byte

// Check runs bcrypt's constant-time comparison.
func (h BcryptSecret) Check(presented string) bool {
	return bcrypt.CompareHashAndPassword(h, []byte(presented)) == nil
}

// ParseBcryptSecret validates a bcrypt hash string.
func ParseBcryptSecret(hash string) (BcryptSecret, error) {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return nil, fmt.Errorf("not a bcrypt hash: %w", err)
	}
	return BcryptSecret(hash), nil
}

// PlainSecret is a secret configured in clear text (accepted with a warning,
// for development). It keeps only a SHA-256 digest and compares digests in
// constant time.
type PlainSecret [sha256.Size]byte

// NewPlainSecret digests s.
func NewPlainSecret(s string) PlainSecret { return sha256.Sum256([]byte(s)) }

// Check compares digests in constant time.
func (p PlainSecret) Check(presented string) bool {
	d := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(p[:], d[:]) == 1
}

// Registration is a registered client (an agent, a resource server, or an
// admin): how it authenticates, which grants it may use, and the ceiling of
// every token it ever holds (Scopes, Audiences). It is named apart from the
// Go client SDK (package delegation/client), which is what an agent runs.
type Registration struct {
	ID string
	// Secret authenticates the client (client_secret_basic/post); Keys, its
	// JWKS, instead authenticates it by private_key_jwt. Exactly one is set.
	Secret    Secret
	Keys      tokens.KeyResolver
	Grants    []string
	Scopes    []string
	Audiences []string
	Groups    []string
	Role      Role
	// Ephemeral, when set, lets the client delegate to unregistered agents
	// named "<ID>/<name>" (see TypeAgent).
	Ephemeral *Ephemeral
	// Serves lists the audiences the client is the resource server for (an
	// MCP server's canonical URI, say). With the token_exchange grant it may
	// exchange a token whose aud contains one of them, though it does not
	// hold it, for a token of its own to a downstream API within Audiences:
	// the audience exchange (audience_exchange.go). At most one registration
	// serves an audience.
	Serves []string

	ephemeral bool // an ephemeral agent made for one exchange, not a registration
	// generatedName: a workload identity a rule generated (workload_identity.go).
	generatedName bool
	// workload, when set, is the workload token that authenticated this
	// request's client (a copy of the registration made for the request).
	workload *workloadProof
}

// Can reports whether the client may use the grant of that name (a
// GrantHandler's Name, as registrations list grants).
func (c *Registration) Can(grant string) bool { return slices.Contains(c.Grants, grant) }

// servesAudienceOf reports whether the client is the resource server for
// one of aud's values (its Serves).
func (c *Registration) servesAudienceOf(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(c.Serves, a) {
			return true
		}
	}
	return false
}

// ceiling is what every token the client holds stays within.
func (c *Registration) ceiling() chain.Grant {
	return chain.Grant{Scopes: c.Scopes, Audiences: c.Audiences}
}

// newDummySecret returns a bcrypt hash at the highest cost among the clients'
// hashes. It is checked when a client id is unknown, so an unknown id costs the
// same as a wrong secret and response time does not reveal which ids exist.
func newDummySecret(clients map[string]*Registration) Secret {
	cost := 0
	for _, c := range clients {
		if b, ok := c.Secret.(BcryptSecret); ok {
			if n, err := bcrypt.Cost(b); err == nil && n > cost {
				cost = n
			}
		}
	}
	if cost == 0 {
		return NewPlainSecret("mandate-dummy-secret")
	}
	h, err := bcrypt.GenerateFromPassword([]byte("mandate-dummy-secret"), cost)
	if err != nil {
		return NewPlainSecret("mandate-dummy-secret")
	}
	return BcryptSecret(h)
}

// errBadCredentials is the one answer to every authentication failure.
var errBadCredentials = oauth.New(oauth.CodeInvalidClient, "client authentication failed")

// Authenticate checks a client id and secret. Every failure (unknown id, wrong
// secret, empty secret) is the same invalid_client error and takes about the
// same time. A success is remembered for AuthCacheTTL (as a SHA-256 digest,
// compared in constant time), so a busy client pays bcrypt once, not per
// request; a wrong secret always goes to bcrypt.
func (s *Service) Authenticate(id, secret string) (*Registration, error) {
	c, ok := s.clients[id]
	if !ok || secret == "" || c.Secret == nil { // a key-only client has no secret to match
		s.dummy.Check(secret)
		return nil, errBadCredentials
	}
	digest := sha256.Sum256([]byte(secret))
	now := s.now()
	if s.authCache.hit(id, digest, now) {
		return c, nil
	}
	if !c.Secret.Check(secret) {
		return nil, errBadCredentials
	}
	s.authCache.put(id, digest, now.Add(AuthCacheTTL))
	return c, nil
}

// AuthCacheTTL is how long a verified client secret is remembered.
const AuthCacheTTL = 5 * time.Minute

// authCache remembers recent successful authentications: one entry per
// registered client at most, so it is bounded by the registry.
type authCache struct {
	mu sync.RWMutex
	m  map[string]authEntry
}

type authEntry struct {
	digest  [sha256.Size]byte
	expires time.Time
}

func (a *authCache) hit(id string, digest [sha256.Size]byte, now time.Time) bool {
	a.mu.RLock()
	e, ok := a.m[id]
	a.mu.RUnlock()
	return ok && now.Before(e.expires) && subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1
}

func (a *authCache) put(id string, digest [sha256.Size]byte, expires time.Time) {
	a.mu.Lock()
	if a.m == nil {
		a.m = map[string]authEntry{}
	}
	a.m[id] = authEntry{digest, expires}
	a.mu.Unlock()
}

// Registration returns the registered client with the given id.
func (s *Service) Registration(id string) (*Registration, bool) {
	c, ok := s.clients[id]
	return c, ok
}

func validateClients(list []Registration, issuer string) (map[string]*Registration, error) {
	m := make(map[string]*Registration, len(list))
	servedBy := map[string]string{} // audience → the client that serves it
	for i := range list {
		c := &list[i]
		if c.ID == "" {
			return nil, fmt.Errorf("clients[%d]: id is required", i)
		}
		if _, dup := m[c.ID]; dup {
			return nil, fmt.Errorf("clients[%d]: id %q is registered twice", i, c.ID)
		}
		if c.Secret != nil && c.Keys != nil {
			return nil, fmt.Errorf("client %q: set a secret or keys (private_key_jwt), not both", c.ID)
		}
		// Neither: it authenticates with a platform token only, which
		// setupWorkload checks a workload rule names it for.
		switch c.Role {
		case RoleAgent, RoleResourceServer, RoleAdmin:
		default:
			return nil, fmt.Errorf("client %q: unknown role %q", c.ID, c.Role)
		}
		for _, g := range c.Grants {
			if _, ok := grantByName(g); !ok {
				return nil, fmt.Errorf("client %q: unknown grant %q (the token endpoint serves %s)", c.ID, g, strings.Join(GrantNames(), ", "))
			}
		}
		auds := c.Audiences
		if c.Ephemeral != nil {
			auds = append(auds[:len(auds):len(auds)], c.Ephemeral.Audiences...)
		}
		if slices.Contains(auds, issuer) {
			// docs/design.md, identity tokens: tokens for Mandate's audience
			// name their holder and grant nothing; a registration granting
			// scopes there would make scoped tokens pass for identity.
			return nil, fmt.Errorf("client %q: audience %q is Mandate's own issuer, the audience of identity tokens (every client may get one without listing it)", c.ID, issuer)
		}
		for _, a := range c.Serves {
			switch other, taken := servedBy[a]; {
			case a == issuer:
				// Mandate is no resource server a client could stand in for;
				// serving it would make every identity token exchangeable.
				return nil, fmt.Errorf("client %q: serves %q, Mandate's own issuer", c.ID, issuer)
			case a == "":
				return nil, fmt.Errorf("client %q: serves an empty audience", c.ID)
			case taken && other != c.ID:
				return nil, fmt.Errorf("client %q: serves %q, which client %q already serves (one registration per resource server; its replicas share it)", c.ID, a, other)
			}
			servedBy[a] = c.ID
		}
		m[c.ID] = c
	}
	return m, nil
}
