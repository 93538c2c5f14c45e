//go:build acceptance

package acceptance

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// withPolicy writes the policy file (a path from this directory) under name and returns a
// server handle whose client and CLI use a new token with that policy (and "default").
func withPolicy(t *testing.T, v *vaultServer, name, file string) *vaultServer {
	t.Helper()
	v.cli(false, "policy", "write", name, file)
	s, err := v.client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}, TTL: "30m"})
	if err != nil {
		t.Fatal(err)
	}
	as := *v
	as.t = t
	as.client = cloneClient(t, v)
	as.client.SetToken(s.Auth.ClientToken)
	return &as
}

// want403 fails t unless err is Vault's 403 (permission denied).
func want403(t *testing.T, what string, err error) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Errorf("%s: got %v, want 403 permission denied", what, err)
	}
}

// examples/policy-reader.hcl: a reader gets tokens from creds/ and is refused everything else
// of the mount, and the refused calls change nothing.
func TestExamplePolicyReader(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, ids := seedAccounts(sim, url, "reader")
	a := accts[0] // OffBlocks: rotatable
	if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	cfgBefore, err := v.client.Logical().Read("apitokens/config/" + a.name)
	if err != nil {
		t.Fatal(err)
	}
	r := withPolicy(t, v, "apitokens-reader", "../examples/policy-reader.hcl")

	s, err := r.client.Logical().Read("apitokens/creds/" + a.name)
	if err != nil {
		t.Fatalf("a reader cannot read creds: %v", err)
	}
	if _, err := sim.Validate(s.Data["token"].(string)); err != nil {
		t.Fatalf("the reader's token is refused by the provider: %v", err)
	}
	if tok := r.cli(false, "read", "-field=token", "apitokens/creds/"+a.name); tok == "" {
		t.Fatal("the CLI read no token with the reader's token")
	}

	l := r.client.Logical()
	for what, call := range map[string]func() error{
		"read config": func() error { _, err := l.Read("apitokens/config/" + a.name); return err },
		"list config": func() error { _, err := l.List("apitokens/config"); return err },
		"write config": func() error {
			_, err := l.Write("apitokens/config/"+a.name, map[string]any{"max_ttl": "1h"})
			return err
		},
		"create a config":        func() error { _, err := l.Write("apitokens/config/reader-new", a.config); return err },
		"delete config":          func() error { _, err := l.Delete("apitokens/config/" + a.name); return err },
		"rotate-root":            func() error { _, err := l.Write("apitokens/rotate-root/"+a.name, nil); return err },
		"read metrics":           func() error { _, err := l.Read("apitokens/metrics"); return err },
		"revoke the creds lease": func() error { return r.client.Sys().RevokePrefix("apitokens/creds/" + a.name) },
	} {
		want403(t, what, call())
	}

	// Nothing refused happened: the config and the provider's credential are as written.
	cfg, err := v.client.Logical().Read("apitokens/config/" + a.name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sim.OffBlocksPair(ids["offblocks"])
	if !reflect.DeepEqual(cfg.Data, cfgBefore.Data) || key != a.config["api_key"] {
		t.Errorf("after refused calls: config %v (before %v), provider key %s", cfg.Data, cfgBefore.Data, key)
	}
	if list, _ := v.client.Logical().List("apitokens/config"); contains(anyStrings(list.Data["keys"]), "reader-new") {
		t.Error("the reader's refused create made a config")
	}
}

// examples/policy-operator.hcl: an operator manages configs, rotates now, plans a rotation
// and cancels it, reads metrics and creds, revokes the creds leases, and is refused outside
// the mount's business (tuning it, policies, other leases).
func TestExamplePolicyOperator(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, ids := seedAccounts(sim, url, "operator")
	a := accts[0]
	op := withPolicy(t, v, "apitokens-operator", "../examples/policy-operator.hcl")
	l := op.client.Logical()

	if _, err := l.Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatalf("create a config: %v", err)
	}
	if _, err := l.Write("apitokens/config/"+a.name, map[string]any{"max_ttl": "10m"}); err != nil {
		t.Fatalf("update a config: %v", err)
	}
	if cfg, err := l.Read("apitokens/config/" + a.name); err != nil || cfg == nil {
		t.Fatalf("read a config: %v", err)
	}
	list, err := l.List("apitokens/config")
	if err != nil || list == nil || !contains(anyStrings(list.Data["keys"]), a.name) {
		t.Fatalf("list configs: %v (%v)", list, err)
	}
	before, err := l.Read("apitokens/creds/" + a.name)
	if err != nil {
		t.Fatalf("read creds: %v", err)
	}
	// A planned rotation, and its cancel (delete on rotate-root/*).
	plan, err := l.Write("apitokens/rotate-root/"+a.name, map[string]any{"planned": true})
	if err != nil || plan == nil || plan.Data["rotates_at"] == nil {
		t.Fatalf("plan a rotation: %v (%v)", plan, err)
	}
	if _, err := l.Delete("apitokens/rotate-root/" + a.name); err != nil {
		t.Fatalf("cancel the planned rotation: %v", err)
	}
	if cfg, _ := v.client.Logical().Read("apitokens/config/" + a.name); cfg == nil || cfg.Data["planned_rotation"] != nil {
		t.Errorf("after the operator's cancel the config reads %v", cfg)
	}
	rot, err := l.Write("apitokens/rotate-root/"+a.name, nil)
	if err != nil {
		t.Fatalf("rotate-root: %v", err)
	}
	if key, _ := sim.OffBlocksPair(ids["offblocks"]); rot.Data["api_key"] != key || key == a.config["api_key"] {
		t.Errorf("rotation: response %v, provider key %s", rot.Data, key)
	}
	if m, err := l.Read("apitokens/metrics"); err != nil || m == nil {
		t.Errorf("read metrics: %v", err)
	}
	// Ending the mount's creds leases, with the operator's token.
	op.cli(false, "lease", "revoke", "-prefix", "apitokens/creds/"+a.name)
	waitFor(t, 10*time.Second, "the pre-rotation lease to be revoked", func() bool {
		_, err := v.client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": before.LeaseID})
		return err != nil
	})

	for what, call := range map[string]func() error{
		"tune the mount": func() error {
			return op.client.Sys().TuneMount("apitokens", api.MountConfigInput{MaxLeaseTTL: "1h"})
		},
		"write a policy":      func() error { return op.client.Sys().PutPolicy("escalate", `path "*" { capabilities = ["sudo"] }`) },
		"revoke other leases": func() error { return op.client.Sys().RevokePrefix("apitokens-cap/creds/") },
		"revoke every lease":  func() error { return op.client.Sys().RevokePrefix("apitokens/") },
	} {
		want403(t, what, call())
	}

	if _, err := l.Delete("apitokens/config/" + a.name); err != nil {
		t.Fatalf("delete a config: %v", err)
	}
	if cfg, err := v.client.Logical().Read("apitokens/config/" + a.name); err != nil || cfg != nil {
		t.Errorf("the config survived the operator's delete: %v (%v)", cfg, err)
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, fmt.Sprint(s))
	}
	return out
}
