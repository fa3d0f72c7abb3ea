package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/policy"
)

// errDenied makes `policy check` exit with status 1 after printing a denial,
// so policy tests can run in a shell script or CI.
var errDenied = errors.New("denied")

func newPolicyCmd() *cobra.Command {
	cmd := groupCmd(&cobra.Command{Use: "policy", Short: "Work with Cedar policies"})
	var reqFile, dir string
	check := &cobra.Command{
		Use:   "check --request FILE [--dir DIR]",
		Short: "Evaluate a request offline against a policy directory",
		Long: `Evaluate one request against the Cedar policies of a directory, offline, and
print the decision with the policies that determined it. Exit status: 0 when
allowed, 1 when denied, 2 on error. The request file is JSON (docs/policy.md):

  {"principal": "orchestrator", "action": "delegate", "resource": "researcher",
   "context": {"subject": "orchestrator", "scopes": ["db:read:*"], "depth": 1}}

For a resource server's call policy, the action is "call" (or another action)
and the resource an entity: {"type": "Table", "id": "orders"}. Groups come
from principal_groups/resource_groups, or from the clients of --config.`,
		Args: cobra.NoArgs,
	}
	format := addFormatFlag(check, "text", "json")
	check.RunE = func(cmd *cobra.Command, _ []string) error {
		cfgPath, _ := cmd.Flags().GetString("config")
		var cfg *server.Config
		if cfgPath != "" {
			c, _, err := server.Load(cfgPath, nil)
			if err != nil {
				return err
			}
			cfg = c
			if dir == "" {
				dir = c.Policy.Dir
			}
		}
		if dir == "" {
			return errors.New("no policy directory: give --dir, or --config with policy.dir")
		}
		if reqFile == "" {
			return errors.New("--request FILE is required")
		}
		set, err := policy.LoadDir(dir)
		if err != nil {
			return err
		}
		raw, err := readRequest(cmd.InOrStdin(), reqFile)
		if err != nil {
			return err
		}
		d, err := checkRequest(set, raw, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", reqFile, err)
		}
		if err := printDecision(cmd.OutOrStdout(), set, d, *format); err != nil {
			return err
		}
		if !d.Allow {
			return errDenied
		}
		return nil
	}
	check.Flags().StringVar(&reqFile, "request", "", "request file (JSON), or - for standard input")
	check.Flags().StringVar(&dir, "dir", "", "policy directory (default: policy.dir of --config)")
	cmd.AddCommand(check)
	return cmd
}

func readRequest(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(stdin, 1<<20))
	}
	return os.ReadFile(name)
}

// checkRequestFile is the JSON form of a request to check.
type checkRequestFile struct {
	Principal       string          `json:"principal"`
	PrincipalGroups []string        `json:"principal_groups"`
	Action          string          `json:"action"`
	Resource        json.RawMessage `json:"resource"`
	ResourceGroups  []string        `json:"resource_groups"`
	Context         struct {
		Subject    string   `json:"subject"`
		Scopes     []string `json:"scopes"`
		Audiences  []string `json:"audiences"`
		Depth      int      `json:"depth"`
		Actors     []string `json:"actors"`
		Root       string   `json:"root"`
		TTLSeconds int64    `json:"ttl_seconds"`
		Ephemeral  bool     `json:"ephemeral"`
		Bound      bool     `json:"bound"`
		// AudienceExchange: a resource server exchanging a token sent to
		// it for its own token downstream (principal == resource).
		AudienceExchange bool `json:"audience_exchange"`
	} `json:"context"`
}

// checkRequest decodes a request file (unknown fields are errors, so a typo
// cannot silently change the question) and evaluates it.
func checkRequest(set *policy.Set, raw []byte, cfg *server.Config) (policy.Decision, error) {
	var r checkRequestFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return policy.Decision{}, fmt.Errorf("not a policy request: %w", err)
	}
	if r.Principal == "" || r.Action == "" || len(r.Resource) == 0 {
		return policy.Decision{}, errors.New(`"principal", "action" and "resource" are required`)
	}
	groupsOf := func(given []string, id string) []string {
		if given != nil || cfg == nil {
			return given
		}
		for _, c := range cfg.Clients {
			if c.ID == id {
				return c.Groups
			}
		}
		for _, c := range cfg.Clients { // not registered: one of c's ephemeral agents?
			if name, ok := strings.CutPrefix(id, c.ID+"/"); ok && name != "" && c.Ephemeral != nil {
				return c.Ephemeral.Groups
			}
		}
		return nil
	}
	ctx := r.Context
	var agent string
	if err := json.Unmarshal(r.Resource, &agent); err == nil {
		if !slices.Contains([]policy.Action{policy.ActionMint, policy.ActionDelegate, policy.ActionDownscope}, policy.Action(r.Action)) {
			return policy.Decision{}, fmt.Errorf("action %q with an agent resource: token requests are mint, delegate or downscope", r.Action)
		}
		return set.Decide(context.Background(), policy.Request{
			Principal: r.Principal, PrincipalGroups: groupsOf(r.PrincipalGroups, r.Principal),
			Action: policy.Action(r.Action), Resource: agent, ResourceGroups: groupsOf(r.ResourceGroups, agent),
			Subject: ctx.Subject, Scopes: ctx.Scopes, Audiences: ctx.Audiences, Depth: ctx.Depth,
			Actors: ctx.Actors, Root: ctx.Root, TTL: time.Duration(ctx.TTLSeconds) * time.Second,
			Ephemeral: ctx.Ephemeral, Bound: ctx.Bound, AudienceExchange: ctx.AudienceExchange,
		})
	}
	var ent policy.Entity
	if err := json.Unmarshal(r.Resource, &ent); err != nil || ent.Type == "" || ent.ID == "" {
		return policy.Decision{}, errors.New(`"resource" must be an agent id, or an entity {"type": "...", "id": "..."}`)
	}
	return set.AuthorizeCall(policy.CallRequest{
		Holder: r.Principal, Groups: groupsOf(r.PrincipalGroups, r.Principal), Action: policy.Action(r.Action),
		Resource: ent, Subject: ctx.Subject, Actors: ctx.Actors, Depth: ctx.Depth, Scopes: ctx.Scopes,
		Audiences: ctx.Audiences, Root: ctx.Root,
	}), nil
}

func printDecision(w io.Writer, set *policy.Set, d policy.Decision, format string) error {
	verdict := "deny"
	if d.Allow {
		verdict = "allow"
	}
	type pol struct {
		ID       string `json:"id"`
		Position string `json:"position"`
	}
	pols := make([]pol, 0, len(d.Policies))
	for _, id := range d.Policies {
		pols = append(pols, pol{id, set.Position(id)})
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"decision": verdict, "allow": d.Allow, "policies": pols, "reason": d.Reason})
	case "text":
		fmt.Fprintf(w, "decision  %s\n", verdict)
		if len(pols) == 0 {
			fmt.Fprintln(w, "policies  (none)")
		}
		for i, p := range pols {
			label := "policies "
			if i > 0 {
				label = strings.Repeat(" ", len(label))
			}
			fmt.Fprintf(w, "%s %s (%s)\n", label, p.ID, p.Position)
		}
		fmt.Fprintf(w, "reason    %s\n", d.Reason)
		return nil
	}
	return checkFormat(format, []string{"text", "json"})
}
