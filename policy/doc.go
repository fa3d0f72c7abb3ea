// Package policy is Mandate's policy-as-code: Cedar policies, evaluated on
// every token request and, by resource servers, on every call.
//
// Attenuation (package chain) guarantees each hop only narrows; policy decides
// whether the hop may happen at all: who may mint, delegate what to whom, and
// what a chain may do at a resource. The model:
//
//   - principal Agent::"<requesting client>" (for a call: the token's holder),
//     with its groups as Group::"<name>" parents;
//   - action Action::"mint", "delegate", "downscope" (token requests) or
//     "call" (or any action a resource server names);
//   - resource Agent::"<new holder>" for token requests; for calls, the
//     resource server's own entity, such as Tool::"search";
//   - context: subject, scopes, scope_patterns, scope_patterns_all,
//     audiences, depth, actors, root, ttl_seconds, holder, ephemeral,
//     bound (token requests); holder,
//     subject, actors, depth, scopes, scope_patterns, scope_patterns_all,
//     audiences, root (calls).
//
// Invariants: a policy's id is its @id annotation, else FILE:LINE; Cedar's
// default deny holds ("no policy permits"); a policy that fails to evaluate
// denies, naming it (fail closed); a Set is immutable, and Engine swaps whole
// Sets atomically, so a broken policy directory never serves. This package
// has no server dependencies: a resource server can import it.
package policy
