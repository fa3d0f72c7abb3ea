// Package policy decides, at request time, whether a token may be minted or
// delegated at all; attenuation (in package chain) already guarantees that a
// permitted hop only narrows.
//
// This file holds the request and decision types the service core evaluates on
// every token request. Until Cedar policies are configured, AllowAll is the
// engine: it permits whatever the attenuation rules permit. A Decision always
// names the policies that determined it, so refusals can be explained.
package policy

import (
	"context"
	"time"
)

// Action is what a token request asks to do.
type Action string

// The three actions of a token request.
const (
	// ActionMint: a root token (client_credentials, or an external subject token).
	ActionMint Action = "mint"
	// ActionDelegate: an exchange that hands the chain to another actor.
	ActionDelegate Action = "delegate"
	// ActionDownscope: an exchange that keeps the same holder.
	ActionDownscope Action = "downscope"
)

// Request is one token request as policy sees it: Principal (the authenticated
// client) asks to perform Action for Resource (the new token's holder).
type Request struct {
	Principal string
	Action    Action
	Resource  string
	// Groups of the principal and of the resource, from the client registry.
	PrincipalGroups []string
	ResourceGroups  []string

	Subject   string
	Scopes    []string
	Audiences []string
	// Depth of the new token (0 for a root).
	Depth int
	// Actors is the prior actor chain, newest first.
	Actors []string
	// Root is the task's root jti; empty when minting a root.
	Root string
	// TTL is the new token's lifetime after clamping.
	TTL time.Duration
}

// Decision is a policy outcome with the ids of the policies that determined it.
type Decision struct {
	Allow    bool
	Policies []string
	Reason   string
}

// AllowAll permits every request; it is the engine when no policy directory is
// configured, leaving the attenuation rules as the only limit.
type AllowAll struct{}

// Decide always allows.
func (AllowAll) Decide(context.Context, Request) (Decision, error) {
	return Decision{Allow: true, Reason: "no policy configured"}, nil
}
