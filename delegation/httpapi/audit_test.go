package httpapi_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
	"github.com/mandate-auth/mandate/store"
)

// TestEveryDecisionIsAudited: issuance (with the permitting policies),
// refusals (with the rule or policy), revocations (with who and why) land in
// the hash-chained trail, which verifies and holds no token.
func TestEveryDecisionIsAudited(t *testing.T) {
	env := dt.New(t, dt.Options{PolicyDir: "../../testdata/policies", Clients: policyClients()})
	root, child, grand := policyChain(t, env)
	env.Exchange(t, "researcher", child, "", url.Values{"scope": {"db:*"}})                     // widening
	env.Post(t, "token_endpoint", "db-agent", url.Values{"grant_type": {"client_credentials"}}) // forbidden by policy
	env.Post(t, "revocation_endpoint", "orchestrator", url.Values{"token": {root}})

	recs, err := env.DB.AuditAfter(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var issued, refused, revoked []store.AuditRecord
	for _, r := range recs {
		switch r.Type {
		case store.AuditIssued:
			issued = append(issued, r)
		case store.AuditRefused:
			refused = append(refused, r)
		case store.AuditRevoked:
			revoked = append(revoked, r)
		}
	}
	if len(issued) != 5 || len(refused) != 2 || len(revoked) != 1 {
		t.Fatalf("issued %d refused %d revoked %d", len(issued), len(refused), len(revoked))
	}
	g := issued[len(issued)-1]
	if g.JTI != env.Claims(t, grand).ID || g.Client != "researcher" || g.Holder != "db-agent" || g.Depth != 2 ||
		g.Root != env.Claims(t, root).ID || len(g.Policies) == 0 || g.Policies[0] != "research-delegates-db-reads" {
		t.Errorf("grandchild issuance = %+v", g)
	}
	if refused[0].Code != "invalid_scope" || !strings.Contains(refused[0].Reason, `"db:*"`) {
		t.Errorf("widening refusal = %+v", refused[0])
	}
	if refused[1].Code != "invalid_request" || refused[1].Policies[0] != "db-agent-reads-only" {
		t.Errorf("policy refusal = %+v", refused[1])
	}
	if revoked[0].JTI != env.Claims(t, root).ID || revoked[0].Client != "orchestrator" || !strings.Contains(revoked[0].Reason, "RFC 7009") {
		t.Errorf("revocation = %+v", revoked[0])
	}
	raw, _ := json.Marshal(recs)
	for _, tok := range []string{root, child, grand} {
		if strings.Contains(string(raw), strings.Split(tok, ".")[2]) {
			t.Fatal("the audit trail holds a token")
		}
	}
	if rep, err := env.DB.VerifyAudit(context.Background()); err != nil || !rep.OK || rep.Records != len(recs) {
		t.Errorf("verify = %+v, %v", rep, err)
	}
}

func TestAuditRecordsSanitizeRequestText(t *testing.T) {
	env := dt.New(t, dt.Options{})
	env.Post(t, "token_endpoint", "orchestrator", url.Values{"grant_type": {"x\n#9 revoked\x1b[2K"}})
	recs, _ := env.DB.AuditTail(context.Background(), 1)
	if len(recs) != 1 || strings.ContainsAny(recs[0].Grant+recs[0].Reason, "\n\x1b") {
		t.Errorf("audit record = %+v", recs)
	}
}
