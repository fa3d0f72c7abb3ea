package vectors

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The fixed settings of the generated feed file.
const (
	feedStaleness = 30
	feedExp       = vecNow + 3600 // the revoked tokens' exp
)

// page is a 200 answer from cursor since with a body.
func page(since, body string) FeedPage { return FeedPage{Since: since, Status: 200, Body: body} }

// pageOf builds a 200 answer from members given in order (so bodies read the
// way Mandate writes them).
func pageOf(since string, members ...any) FeedPage {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(members); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(members[i])
		v, _ := json.Marshal(members[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return page(since, b.String())
}

// revs is a revocations array of jtis, each with the fixed exp.
func revs(jtis ...string) []map[string]any {
	out := make([]map[string]any, 0, len(jtis))
	for _, j := range jtis {
		out = append(out, map[string]any{"jti": j, "exp": feedExp})
	}
	return out
}

func syncAt(at int64, pages ...FeedPage) FeedStep { return FeedStep{At: at, Sync: pages} }
func checkAt(at int64, jtis ...string) FeedStep   { return FeedStep{At: at, Check: jtis} }

// feedVectors scripts the feed's pages and what a follower must report:
// cursors carried between polls and syncs, pages until more is false, the
// staleness bound to the second, a failed page keeping what came before
// without counting as a sync, resets that never forget, revoked_keys handed
// to the key set, and the grammar of a page (a page that breaks it changes
// nothing).
func feedVectors() *FeedFile {
	t := int64(vecNow)
	first := pageOf("", "revocations", revs("a"), "cursor", "c1")
	cases := []FeedCase{
		{Name: "never synced: every check fails closed", Steps: []FeedStep{checkAt(t, "x")}, Expect: "stale"},
		{Name: "a first page: its revocations, the first revoked jti in the order asked", Steps: []FeedStep{
			syncAt(t, pageOf("", "revocations", revs("a", "b"), "cursor", "c1", "more", false, "reset", false)),
			checkAt(t, "x"), checkAt(t, "x", "b", "a"), checkAt(t, "a")},
			Expect: "synced; ok; revoked:b; revoked:a"},
		{Name: "pages until more is false, each from the last page's cursor", Steps: []FeedStep{
			syncAt(t, pageOf("", "revocations", revs("a"), "cursor", "c1", "more", true),
				pageOf("c1", "revocations", revs("b"), "cursor", "c2", "more", true),
				pageOf("c2", "revocations", []any{}, "cursor", "c3")),
			checkAt(t, "b"), checkAt(t, "a"), syncAt(t+1, pageOf("c3", "cursor", "c4")), checkAt(t+1, "x")},
			Expect: "synced; revoked:b; revoked:a; synced; ok"},
		{Name: "the staleness bound, to the second", Steps: []FeedStep{
			syncAt(t, first), checkAt(t+feedStaleness, "x"), checkAt(t+feedStaleness+1, "x"),
			syncAt(t+40, pageOf("c1", "cursor", "c2")), checkAt(t+40, "a"), checkAt(t+40+feedStaleness, "x")},
			Expect: "synced; ok; stale; synced; revoked:a; ok"},
		{Name: "a page with more to come is not yet a sync", Steps: []FeedStep{
			syncAt(t, pageOf("", "revocations", revs("a"), "cursor", "c1", "more", true), FeedPage{Since: "c1", Status: 503, Body: `{"error":"temporarily_unavailable"}`}),
			checkAt(t, "a"), syncAt(t+1, pageOf("c1", "revocations", revs("b"), "cursor", "c2")), checkAt(t+1, "a"), checkAt(t+1, "b")},
			Expect: "failed; stale; synced; revoked:a; revoked:b"},
		{Name: "a failed sync keeps the last one's answers until the bound", Steps: []FeedStep{
			syncAt(t, first), syncAt(t+10, FeedPage{Since: "c1", Status: 500, Body: "oops"}),
			checkAt(t+20, "a"), checkAt(t+feedStaleness+1, "a")},
			Expect: "synced; failed; revoked:a; stale"},
		{Name: "a reset never forgets a revocation", Steps: []FeedStep{
			syncAt(t, pageOf("", "revocations", revs("a"), "cursor", "s.5")),
			syncAt(t+1, pageOf("s.5", "revocations", []any{}, "cursor", "t.1", "reset", true)),
			checkAt(t+1, "a"), syncAt(t+2, pageOf("t.1", "cursor", "t.2")), checkAt(t+2, "a")},
			Expect: "synced; synced; revoked:a; synced; revoked:a"},
		{Name: "revoked_keys go to the key set, page by page, even when a later page fails", Steps: []FeedStep{
			syncAt(t, pageOf("", "cursor", "c1", "revoked_keys", []string{"k1", "k2"})),
			syncAt(t+1, pageOf("c1", "cursor", "c2", "more", true, "revoked_keys", []string{"k3"}), FeedPage{Since: "c2", Status: 502, Body: ""})},
			Expect: "synced dropped:k1,k2; failed dropped:k3"},
		{Name: "the HTTP status: 401 fails", Steps: []FeedStep{syncAt(t, FeedPage{Since: "", Status: 401, Body: `{"error":"invalid_client"}`}), checkAt(t, "x")},
			Expect: "failed; stale"},
		{Name: "the HTTP status: a 204 is not a page", Steps: []FeedStep{syncAt(t, FeedPage{Since: "", Status: 204, Body: ""})}, Expect: "failed"},
	}
	// Pages a follower accepts although they look odd.
	odd := []struct{ name, body, check, want string }{
		{"unknown members are ignored", `{"cursor":"c2","v":2,"revocations":[{"jti":"b","exp":` + itoa(feedExp) + `,"reason":"leak"}],"extra":{"x":[1]}}`, "b", "revoked:b"},
		{"null members read as absent", `{"cursor":"c2","revocations":null,"more":null,"reset":null,"revoked_keys":null}`, "b", "ok"},
		{"an exp with a fraction or an exponent reads as its whole second", `{"cursor":"c2","revocations":[{"jti":"b","exp":1795773600.75},{"jti":"c","exp":1.7957736E9}]}`, "c", "revoked:c"},
		{"a negative exp is a date (long past)", `{"cursor":"c2","revocations":[{"jti":"b","exp":-1}]}`, "x", "ok"},
		{"a member twice: the last counts", `{"cursor":"c9","revocations":[{"jti":"z","exp":1},{"jti":"b","exp":` + itoa(feedExp) + `}],"cursor":"c2"}`, "b", "revoked:b"},
		{"escapes in names and values", `{"\u0063ursor":"c2","revocations":[{"jti":"\u0062","exp":` + itoa(feedExp) + `}]}`, "b", "revoked:b"},
	}
	for _, o := range odd {
		cases = append(cases, FeedCase{Name: "accepted: " + o.name, Steps: []FeedStep{
			syncAt(t, first), syncAt(t+1, page("c1", o.body)), checkAt(t+1, o.check), syncAt(t+2, pageOf("c2", "cursor", "c3"))},
			Expect: "synced; synced; " + o.want + "; synced"})
	}
	// Pages that break the grammar: each is refused whole (nothing applies,
	// no key is dropped, the cursor stays), and the next sync asks again
	// from the same cursor.
	exp := itoa(feedExp)
	bad := []struct{ name, body string }{
		{"not JSON", `revocations`},
		{"an empty body", ``},
		{"null", `null`},
		{"an array", `[{"cursor":"c2"}]`},
		{"a string", `"c2"`},
		{"no cursor", `{"revocations":[{"jti":"b","exp":` + exp + `}],"revoked_keys":["k9"]}`},
		{"an empty cursor", `{"cursor":"","revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"a cursor that is a number", `{"cursor":5,"revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"the cursor spelt CURSOR", `{"CURSOR":"c2","revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"more as a string", `{"cursor":"c2","more":"false","revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"more as a number", `{"cursor":"c2","more":0,"revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"reset as a string", `{"cursor":"c2","reset":"true","revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"revocations an object", `{"cursor":"c2","revocations":{"jti":"b","exp":` + exp + `}}`},
		{"revocations of strings", `{"cursor":"c2","revocations":["b"]}`},
		{"an entry without jti", `{"cursor":"c2","revocations":[{"jti":"b","exp":` + exp + `},{"exp":` + exp + `}]}`},
		{"an entry with jti spelt JTI", `{"cursor":"c2","revocations":[{"JTI":"b","exp":` + exp + `}]}`},
		{"an empty jti", `{"cursor":"c2","revocations":[{"jti":"b","exp":` + exp + `},{"jti":"","exp":` + exp + `}]}`},
		{"a jti that is a number", `{"cursor":"c2","revocations":[{"jti":"b","exp":` + exp + `},{"jti":7,"exp":` + exp + `}]}`},
		{"a jti that is null", `{"cursor":"c2","revocations":[{"jti":"b","exp":` + exp + `},{"jti":null,"exp":` + exp + `}]}`},
		{"an entry without exp", `{"cursor":"c2","revocations":[{"jti":"b"}]}`},
		{"an exp of zero", `{"cursor":"c2","revocations":[{"jti":"b","exp":0}]}`},
		{"an exp of null", `{"cursor":"c2","revocations":[{"jti":"b","exp":null}]}`},
		{"an exp that is a string", `{"cursor":"c2","revocations":[{"jti":"b","exp":"` + exp + `"}]}`},
		{"an exp that is a boolean", `{"cursor":"c2","revocations":[{"jti":"b","exp":true}]}`},
		{"an exp beyond 2^53", `{"cursor":"c2","revocations":[{"jti":"b","exp":9007199254740993}]}`},
		{"an exp of 2^53 and a half", `{"cursor":"c2","revocations":[{"jti":"b","exp":9007199254740992.5}]}`},
		{"an exp of 1e400", `{"cursor":"c2","revocations":[{"jti":"b","exp":1e400}]}`},
		{"revoked_keys a string", `{"cursor":"c2","revoked_keys":"k9","revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"revoked_keys with a number", `{"cursor":"c2","revoked_keys":["k9",9],"revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"revoked_keys with a null", `{"cursor":"c2","revoked_keys":["k9",null],"revocations":[{"jti":"b","exp":` + exp + `}]}`},
		{"trailing data", `{"cursor":"c2","revocations":[{"jti":"b","exp":` + exp + `}]} {}`},
	}
	for _, b := range bad {
		cases = append(cases, FeedCase{Name: "refused: " + b.name, Steps: []FeedStep{
			syncAt(t, first), syncAt(t+1, page("c1", b.body)), checkAt(t+1, "b"), checkAt(t+1, "a"),
			syncAt(t+2, pageOf("c1", "cursor", "c2")), checkAt(t+2, "b")},
			Expect: "synced; failed; ok; revoked:a; synced; ok"})
	}
	return &FeedFile{
		Comment: "Generated by chain/vectors (go test ./chain/vectors -run TestVectorsAreUpToDate -update); " +
			"the format and the follower's rules: testdata/vectors/README.md, \"Feed files\".",
		LeewaySeconds: vecLeeway, MaxStalenessSeconds: feedStaleness, Cases: cases,
	}
}

func itoa(n int64) string { return fmt.Sprint(n) }
