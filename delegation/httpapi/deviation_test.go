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

// TestProbingIsPunished: an agent that keeps presenting other agents'
// tokens, delegating past max_depth or naming an actor may_act excludes is
// suspended like one that keeps widening; deviation.count leaves a kind out.
func TestProbingIsPunished(t *testing.T) {
	probes := map[string]func(env *dt.Env) dt.Response{
		delegation.DeviationForeignToken: func(env *dt.Env) dt.Response {
			return env.Exchange(t, "outsider", env.Mint(t, "orchestrator", nil), "", nil)
		},
		delegation.DeviationDepth: func(env *dt.Env) dt.Response {
			tok := env.Mint(t, "outsider", nil)
			tok = env.Delegate(t, "outsider", tok, "", nil)
			return env.Exchange(t, "outsider", tok, "", nil) // max_depth 1
		},
		delegation.DeviationMayAct: func(env *dt.Env) dt.Response {
			root := env.Forge(t, env.Mint(t, "outsider", nil), func(c *jwt.Claims) { c.MayAct = &jwt.Actor{Subject: "orchestrator"} })
			return env.Exchange(t, "outsider", root, env.Identity(t, "researcher"), nil)
		},
	}
	for kind, probe := range probes {
		t.Run(kind, func(t *testing.T) {
			env := dt.New(t, dt.Options{MaxDepth: 1, Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute}})
			held := env.Mint(t, "outsider", nil)
			for range 3 {
				expectError(t, probe(env), 400, oauth.CodeInvalidRequest)
			}
			if active(t, env, held) {
				t.Error("the probing agent's tokens survived")
			}
			r := env.Post(t, "token_endpoint", "outsider", ccForm)
			if r.Status != 400 || !strings.Contains(r.String("error_description"), "suspended") {
				t.Errorf("the probing agent is not suspended: %d %s", r.Status, r.Raw)
			}

			// Left out of deviation.count, the same probing is only refused.
			var others []string
			for _, k := range delegation.DeviationKinds {
				if k != kind {
					others = append(others, k)
				}
			}
			env2 := dt.New(t, dt.Options{MaxDepth: 1, Deviation: delegation.Deviation{MaxDenials: 3, Window: time.Minute, Count: others}})
			held2 := env2.Mint(t, "outsider", nil)
			for range 5 {
				expectError(t, probe(env2), 400, oauth.CodeInvalidRequest)
			}
			if !active(t, env2, held2) {
				t.Errorf("%s counted though deviation.count leaves it out", kind)
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
