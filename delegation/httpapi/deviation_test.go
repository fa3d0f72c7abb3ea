package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation"
	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestProbingIsPunished: an agent that keeps presenting or revoking other
// agents' tokens, handing over another agent's powers as an actor token,
// or naming an actor may_act excludes is suspended like one that keeps
// widening; deviation.count leaves a kind out. Delegating past max_depth
// counts only when deviation.count names depth.
func TestProbingIsPunished(t *testing.T) {
	owned := func(env *dt.Env) string { return env.Mint(t, "outsider", nil) }
	probes := []struct {
		name, kind string
		code       string
		probe      func(env *dt.Env) dt.Response
	}{
		{"another's token as subject_token", delegation.DeviationForeignToken, oauth.CodeInvalidRequest, func(env *dt.Env) dt.Response {
			return env.Exchange(t, "outsider", env.Mint(t, "orchestrator", nil), "", nil)
		}},
		{"another's scoped bearer token as actor_token", delegation.DeviationForeignToken, oauth.CodeInvalidRequest, func(env *dt.Env) dt.Response {
			return env.Exchange(t, "outsider", owned(env), env.Mint(t, "researcher", nil), nil)
		}},
		{"revoking another's token", delegation.DeviationForeignToken, oauth.CodeUnauthorizedClient, func(env *dt.Env) dt.Response {
			return env.Post(t, "revocation_endpoint", "outsider", url.Values{"token": {env.Mint(t, "orchestrator", nil)}})
		}},
		{"another owner's ephemeral agent", delegation.DeviationForeignToken, oauth.CodeInvalidRequest, func(env *dt.Env) dt.Response {
			key := newKey(t)
			return env.Exchange(t, "outsider", owned(env), agentToken(t, env, key, nil), nil) // made by the orchestrator for its agent
		}},
		{"depth", delegation.DeviationDepth, oauth.CodeInvalidRequest, func(env *dt.Env) dt.Response {
			tok := env.Delegate(t, "outsider", owned(env), "", nil)
			return env.Exchange(t, "outsider", tok, "", nil) // max_depth 1
		}},
		{"may_act", delegation.DeviationMayAct, oauth.CodeInvalidRequest, func(env *dt.Env) dt.Response {
			root := env.Forge(t, owned(env), func(c *jwt.Claims) { c.MayAct = &jwt.Actor{Subject: "orchestrator"} })
			return env.Exchange(t, "outsider", root, env.Identity(t, "researcher"), nil)
		}},
	}
	clients := dt.DefaultClients()
	for i := range clients {
		if clients[i].ID == "outsider" { // may name ephemeral agents, so another owner's is a deviation, not a refusal of the feature
			clients[i].Ephemeral = &delegation.Ephemeral{Scopes: []string{"db:read:*"}}
		}
	}
	probed := func(t *testing.T, env *dt.Env, probe func(*dt.Env) dt.Response, code string, n int) string {
		held := owned(env)
		for range n {
			r := probe(env)
			expectError(t, r, r.Status, code)
			if r.Status != 400 && r.Status != 401 {
				t.Fatalf("probe answered %d %s", r.Status, r.Raw)
			}
		}
		return held
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			count := []string(nil) // the default
			if p.kind == delegation.DeviationDepth {
				// Not counted by default: the same probing is only refused.
				env := dt.New(t, dt.Options{Clients: clients, MaxDepth: 1, Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute}})
				if held := probed(t, env, p.probe, p.code, 5); !active(t, env, held) {
					t.Error("depth counted though deviation.count does not name it")
				}
				count = delegation.DeviationKinds
			}
			env := dt.New(t, dt.Options{Clients: clients, MaxDepth: 1, Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute, Count: count}})
			if held := probed(t, env, p.probe, p.code, 3); active(t, env, held) {
				t.Error("the probing agent's tokens survived")
			}
			r := env.Post(t, "token_endpoint", "outsider", ccForm)
			if r.Status != 400 || !strings.Contains(r.String("error_description"), "suspended") {
				t.Errorf("the probing agent is not suspended: %d %s", r.Status, r.Raw)
			}

			// Left out of deviation.count, the same probing is only refused.
			var others []string
			for _, k := range delegation.DeviationKinds {
				if k != p.kind {
					others = append(others, k)
				}
			}
			env2 := dt.New(t, dt.Options{Clients: clients, MaxDepth: 1, Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute, Count: others}})
			if held := probed(t, env2, p.probe, p.code, 5); !active(t, env2, held) {
				t.Errorf("%s counted though deviation.count leaves it out", p.kind)
			}
		})
	}
}

// TestASuspensionSurvivesARestart: a restart does not let a suspended agent go.
func TestASuspensionSurvivesARestart(t *testing.T) {
	clock := dt.NewClock(dt.Start)
	dev := delegation.Deviation{MaxDenials: 2, Window: time.Minute}
	env := dt.New(t, dt.Options{Clock: clock, Deviation: dev})
	widen := url.Values{"grant_type": {oauth.GrantClientCredentials}, "scope": {"db:*"}}
	for range 2 {
		expectError(t, env.Post(t, "token_endpoint", "outsider", widen), 400, oauth.CodeInvalidScope)
	}
	env.Stop(t)
	clock.Advance(30 * time.Second)
	env2 := dt.New(t, dt.Options{Clock: clock, Deviation: dev, Dir: env.Dir})
	if r := env2.Post(t, "token_endpoint", "outsider", ccForm); r.Status != 400 || !strings.Contains(r.String("error_description"), "suspended") {
		t.Fatalf("after a restart within the window: %d %s", r.Status, r.Raw)
	}
	clock.Advance(31 * time.Second)
	env2.Mint(t, "outsider", nil) // the window has passed
}
