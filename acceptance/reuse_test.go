//go:build acceptance

package acceptance

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// With token_reuse, in a real Vault: two reads share one token, each with its own lease
// (the later one shorter); rotate-root drops the shared token, and the next read's token is
// valid at the provider.
func TestReuseInVault(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, _ := seedAccounts(sim, url, "reuse")
	a := accts[0] // offblocks: a rotation kills every earlier token
	a.config["token_reuse"] = true
	if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	read := func() *api.Secret {
		t.Helper()
		s, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Validate(s.Data["token"].(string)); err != nil {
			t.Fatalf("the provider refuses the token: %v", err)
		}
		return s
	}
	first := read()
	time.Sleep(2 * time.Second)
	second := read()
	if first.Data["token"] != second.Data["token"] {
		t.Fatal("two reads with token_reuse got different tokens")
	}
	if first.LeaseID == second.LeaseID || second.LeaseDuration >= first.LeaseDuration {
		t.Fatalf("leases %s (%ds) and %s (%ds): want two leases, the second shorter",
			first.LeaseID, first.LeaseDuration, second.LeaseID, second.LeaseDuration)
	}
	if _, err := v.client.Logical().Write("apitokens/rotate-root/"+a.name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Validate(first.Data["token"].(string)); err == nil {
		t.Fatal("the rotation did not kill the shared token at the provider")
	}
	if third := read(); third.Data["token"] == first.Data["token"] {
		t.Fatal("the shared token outlived the rotation")
	}
}

// Vault Agent with token_reuse (and 20 s leases) keeps rendering a token the provider
// accepts: the same shared one while it lasts, and a new one after a rotation kills it.
func TestVaultAgentWithReuse(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, _ := seedAccounts(sim, url, "agent-reuse")
	a := accts[0]
	a.config["token_reuse"], a.config["max_ttl"] = true, "20s"
	if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	read := startAgent(t, v, []string{a.name})
	var first string
	for deadline := time.Now().Add(60 * time.Second); first == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		first = read(a.name)
	}
	if _, err := sim.Validate(first); err != nil {
		t.Fatalf("the agent rendered a token the provider refuses: %v", err)
	}
	s, err := v.client.Logical().Read("apitokens/creds/" + a.name)
	if err != nil || s.Data["token"] != first {
		t.Fatalf("a read beside the agent did not share its token: %v", err)
	}
	if _, err := v.client.Logical().Write("apitokens/rotate-root/"+a.name, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var next string
	for deadline := start.Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if next = read(a.name); next != first {
			break
		}
	}
	if next == first {
		t.Fatal("the agent did not render a new token within 90s of the rotation")
	}
	if _, err := sim.Validate(next); err != nil {
		t.Fatalf("the token rendered after the rotation is refused: %v", err)
	}
	t.Logf("after the rotation, the agent rendered a new shared token in %s (20s leases)", time.Since(start).Round(time.Second))
}
