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
		`db-agent, asking for all it is registered for \(db:read:\* tools:search\): refused → 400 invalid_request: denied by policy "db-agent-reads-only"`,
		`act      researcher\s`,
		`act      db-agent ← researcher`,
		`lineage  root → child\s+depth 2`,
		`refused → 400 invalid_scope`,
		`GET /orders → 200 .*db-agent acting for orchestrator, delegated through researcher`,
		`POST /oauth2/revoke → 200`,
		`learned it from the revocation feed \S+ after the revoke returned`,
		`GET /orders\s+→ 401 invalid_token: token has been revoked: ancestor \S+ is revoked`,
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
	if strings.Contains(text, "eyJ") {
		t.Error("the demo prints a whole token")
	}
}
