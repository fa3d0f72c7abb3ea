// Package tokens defines Mandate's token format and the keys that sign it.
//
// A Mandate token is a JWS compact serialization (RFC 9068 profile, typ
// "at+jwt") signed with EdDSA (Ed25519) or ES256. Claims carry the RFC 8693
// actor chain ("act") and Mandate's "lineage" of ancestor jtis.
//
// Invariants: every token has a "kid"; verification looks the key up by kid and
// requires the header's "alg" to be the key's own algorithm, so "none", HMAC
// and algorithm-confusion tricks can never select a key; the jku, x5u and jwk
// headers are never consulted. Private key material only leaves this package
// as PKCS#8 bytes handed to a KeyStore, which must keep it unreadable to others.
package tokens
