package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
		"refunds-below-100-at-depth-1", // the refused refund names its policy
		"insufficient_scope",           // reserve_stock outside stock-1's scopes
		"orders-mcp",                   // the audience exchange: the MCP server in the API's actors and in the lineage
		"researcher-1", "stock-1",
		"$ mandate lineage",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("the story does not tell %q:\n%s", want, story)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("\n%s", story)
}
