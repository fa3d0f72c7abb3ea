package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mandate-auth/mandate/delegation/client"
	"github.com/mandate-auth/mandate/tokens"
)

// demoCluster stands in for a Kubernetes cluster's API server: the key it
// signs service-account tokens with, and the JWKS Mandate is configured
// with (a real cluster publishes it at /openid/v1/jwks).
type demoCluster struct {
	issuer   string
	jwksFile string
	priv     ed25519.PrivateKey
}

func newDemoCluster(dir string) (*demoCluster, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &demoCluster{issuer: "https://kubernetes.default.svc.cluster.local", jwksFile: filepath.Join(dir, "cluster-jwks.json"), priv: priv}
	raw, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "cluster-sa-key",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	if err != nil {
		return nil, err
	}
	return c, os.WriteFile(c.jwksFile, raw, 0o600)
}

// projectedToken writes what the kubelet mounts into a pod: a
// service-account token for audience, valid an hour, at path.
func (c *demoCluster) projectedToken(path, audience, namespace, name string, now time.Time) error {
	claims := map[string]any{
		"iss": c.issuer, "aud": []string{audience}, "sub": "system:serviceaccount:" + namespace + ":" + name,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"pod":            map[string]any{"name": name + "-6f7c9-k2x8q", "uid": "5b1e0c2a"},
			"serviceaccount": map[string]any{"name": name, "uid": "9d3f4e61"},
		},
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"cluster-sa-key"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	tok := in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(c.priv, []byte(in)))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(tok), 0o600)
}

// podAgent tells the workload-identity turn of the story: a pod whose only
// credential is the token its platform mounted authenticates with it,
// is delegated part of the task, and calls the API. It returns the pod's
// delegated token, which the revocation later ends.
func (d *demo) podAgent(ctx context.Context, orch *client.Client, root *client.Token, apiURL string) (*client.Token, error) {
	tokenFile := filepath.Join(d.dir, "pod", "var/run/secrets/tokens/mandate")
	if err := d.cluster.projectedToken(tokenFile, d.base, "agents", "indexer", time.Now()); err != nil {
		return nil, err
	}
	d.say("   The cluster mounts a service-account token in the pod (re-read at each request: the kubelet")
	d.say("   rotates it). Mandate trusts the cluster's key (workload_issuers) and maps")
	d.say("   system:serviceaccount:agents:* to k8s/{namespace}/{serviceaccount}, ceiling db:read:* for %s.", ordersAud)
	key, err := tokens.NewDPoPKey(tokens.AlgEdDSA)
	if err != nil {
		return nil, err
	}
	pod, err := client.NewWorkload(ctx, d.base, client.TokenFile(tokenFile), client.WithKey(key))
	if err != nil {
		return nil, err
	}
	id, err := pod.Identity(ctx)
	if err != nil {
		return nil, fmt.Errorf("demo: the pod's identity token: %w", err)
	}
	d.say("   The pod gets its identity token with the service-account token as its client assertion (RFC 7523):")
	d.say("   it is %s, and no secret was ever issued to it.", pod.ID())
	given, err := orch.Exchange(ctx, root, client.ExchangeOptions{Actor: id.Value, Scope: ordersScope, Audiences: []string{ordersAud}})
	if err != nil {
		return nil, fmt.Errorf("demo: delegating to the pod: %w", err)
	}
	d.show(given, "pod")
	podTok := pod.Adopt(given.Value)
	status, body := d.callAPI(apiURL, podTok)
	d.say("   GET /orders → %d %s", status, body)
	if status != http.StatusOK {
		return nil, fmt.Errorf("demo: the API refused the pod")
	}
	return podTok, nil
}
