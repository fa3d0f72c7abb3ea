package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDemoTellsTheWholeStory runs the demo for real (server, store, API) and
// checks each turn of the story happened, in order.
func TestDemoTellsTheWholeStory(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(context.Background(), &out, bcrypt.MinCost); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	text := out.String()
	steps := []string{
		`mint.cedar: +agents-mint-own`,
		`(?m)^1\. The orchestrator starts a task`,
		`lineage  \[\]\s+depth 0`,
		`researcher, db-agent: granted`,
		`db-agent, asking for a root with all it is registered for \(db:read:\* tools:search\): refused → 400 invalid_request: denied by policy "db-agent-reads-only"`,
		`act      researcher\s`,
		`act      db-agent ← researcher`,
		`lineage  root → child\s+depth 2`,
		`refused → 400 invalid_scope`,
		`GET /orders → 200 .*db-agent acting for orchestrator, delegated through researcher`,
		`as a Bearer token\s+→ 401 invalid_token: token is sender-constrained`,
		`with a proof of the thief's key → 401 invalid_dpop_proof: .*not made with the key the token is bound to`,
		`even with the db-agent's client secret → 400 invalid_dpop_proof`,
		`holder   orchestrator/summarizer-[0-9a-f]{4}\s`,
		`cnf.jkt  \S+`,
		`GET /orders → 200 .*"caller":"orchestrator/summarizer-[0-9a-f]{4} acting for orchestrator"`,
		`it is k8s/agents/indexer, and no secret was ever issued to it`,
		`holder   k8s/agents/indexer\s`,
		`GET /orders → 200 .*"caller":"k8s/agents/indexer acting for orchestrator"`,
		`POST /oauth2/revoke → 200`,
		`learned it from the revocation feed \S+ after the revoke returned`,
		`db-agent\s+GET /orders\s+→ 401 invalid_token: token has been revoked: ancestor \S+ is revoked`,
		`summarizer GET /orders\s+→ 401 invalid_token: token has been revoked`,
		`pod\s+GET /orders\s+→ 401 invalid_token: token has been revoked`,
		`delegates again\s+→ 400 invalid_request: subject_token descends from revoked token`,
		`\S+  orchestrator  \[revoked \S+ by orchestrator: revoked by orchestrator \(RFC 7009\)\]  ◀`,
		`└─ \S+  db-agent  \[revoked-by-ancestor \(\S+\)\]`,
		`mandate audit verify`,
	}
	pos := 0
	for _, s := range steps {
		loc := regexp.MustCompile(s).FindStringIndex(text[pos:])
		if loc == nil {
			t.Fatalf("demo output lacks (in order) %q:\n%s", s, text)
		}
		pos += loc[1]
	}
	// The ephemeral agent's branch is in the tree too (siblings come in jti
	// order, which is random, so not in the ordered list above).
	if !regexp.MustCompile(`─ \S+  orchestrator/summarizer-[0-9a-f]{4}  \[revoked-by-ancestor`).MatchString(text) {
		t.Errorf("the lineage tree lacks the ephemeral agent:\n%s", text)
	}
	if strings.Contains(text, "eyJ") {
		t.Error("the demo prints a whole token")
	}
}
