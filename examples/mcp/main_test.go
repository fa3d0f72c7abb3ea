package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestStory runs the whole MCP story (`make example-mcp`) and checks what
// it tells: the Python orchestrator's agents call the TypeScript and Go MCP
// servers, a refund goes through the orders API by the audience exchange,
// the refused refund names its policy, a missing scope is refused before
// any policy, revoking the task stops both servers, and the lineage shows
// the tree with the MCP server in it. `make test` runs it
// (MANDATE_EXAMPLE_MCP=1, after the SDKs are set up); alone it needs the
// checkout's .venv and the TypeScript SDK built.
func TestStory(t *testing.T) {
	if os.Getenv("MANDATE_EXAMPLE_MCP") == "" {
		t.Skip("the MCP story needs the Python and TypeScript SDKs set up: run it with make test-examples")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	python := os.Getenv("PYTHON")
	if python == "" {
		python = filepath.Join(repo, ".venv", "bin", "python")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(context.Background(), options{Out: &out, Repo: repo, Python: python, Node: node,
		MandateBin: os.Getenv("MANDATE_BIN"), BcryptCost: bcrypt.MinCost})
	story := out.String()
	if err != nil {
		t.Fatalf("the story failed: %v\n%s", err, story)
	}
	for _, want := range []string{
		"refund_order {o-1, 40} → allowed",                                    // below 100, at depth 1
		"saw the chain orchestrator → orchestrator/researcher-1 → orders-mcp", // the audience exchange, seen downstream
		"refused (JSON-RPC 403) by policy refunds-below-100-at-depth-1",       // the refused refund names its policy
		"HTTP 403 insufficient_scope (needs tools:reserve_stock)",             // a scope the token lacks, before any policy
		"$ mandate lineage",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("the story does not tell %q", want)
		}
	}
	// Revoking the task stops both servers within a second.
	refusals := regexp.MustCompile(`(orders \(TypeScript\)|inventory \(Go\)) refused the next call (\d+) ms after the revocation`).FindAllStringSubmatch(story, -1)
	if len(refusals) != 2 {
		t.Errorf("want both servers' refusals timed, got %q", refusals)
	}
	for _, r := range refusals {
		if ms, _ := strconv.Atoi(r[2]); ms >= 1000 {
			t.Errorf("%s took %d ms to refuse a revoked task", r[1], ms)
		}
	}
	// The lineage shows the tree, the MCP server's own token under the agent's.
	tree := story[strings.Index(story, "$ mandate lineage"):]
	for _, want := range []string{"├─ ", "orchestrator/researcher-1  [revoked-by-ancestor", "└─ ", "orders-mcp  [revoked-by-ancestor", "orchestrator/stock-1  [revoked-by-ancestor"} {
		if !strings.Contains(tree, want) {
			t.Errorf("the lineage lacks %q", want)
		}
	}
	if strings.Index(tree, "orders-mcp  [") < strings.Index(tree, "orchestrator/researcher-1  [") {
		t.Error("the orders MCP server's token is not under researcher-1's")
	}
	if t.Failed() {
		t.Logf("the story:\n%s", story)
	}
}
