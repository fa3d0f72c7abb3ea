// Package chain holds the rules of a delegation chain that both the issuer and
// a resource server apply: scope coverage with ":*" wildcards, attenuation
// (a child never has more scope or audience than its parent and the new
// holder's registration), and the structural checks on a token's actor chain
// and lineage.
//
// Everything here is pure: no I/O, no clock, no server dependencies, so a
// resource server can import it without pulling in Mandate's storage or HTTP
// stack. Scopes are compared byte for byte; only a trailing ":*" segment or a
// lone "*" is a wildcard, and scope strings are restricted to the RFC 6749
// §3.3 character set, so case, whitespace and Unicode look-alikes can never
// widen a grant.
package chain
