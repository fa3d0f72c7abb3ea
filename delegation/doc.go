// Package delegation is Mandate's service core: it authenticates clients and
// decides every token request (client_credentials roots, RFC 8693 exchanges
// from Mandate or trusted external tokens), revocation (RFC 7009) and
// introspection (RFC 7662).
//
// Invariants it enforces on every issued token:
//   - attenuation: a child's scopes are covered by its parent's and by the new
//     holder's registration, its audiences are a subset of both (of the
//     registration alone after an audience exchange), and it never outlives
//     its parent;
//   - lineage: a child's lineage is its parent's plus the parent's jti, its sub
//     is the parent's, and its act chain only ever grows by the new holder;
//   - possession: only a token's holder can exchange it — or the one client
//     registered as serving one of its audiences, for a token of its own to a
//     downstream API (the audience exchange: no token passthrough) — and no
//     token with a revoked ancestor can be exchanged or introspected as
//     active;
//   - durability: a token's record is committed before the token is returned.
//
// The core never sees an HTTP type; package httpapi translates. Every refusal is
// an *oauth.Error with the RFC code and a description that names the rule but
// never a secret or a whole token. Time comes from Config.Now, so tests run on a
// fixed clock.
package delegation
