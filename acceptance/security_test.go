//go:build acceptance

package acceptance

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// wantReaderError fails t unless err is Vault's 502 whose text contains every want and none
// of the not.
func wantReaderError(t *testing.T, what string, err error, want []string, not []string) string {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadGateway {
		t.Fatalf("%s: got %v, want a 502", what, err)
	}
	msg := strings.Join(re.Errors, "\n")
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: %q lacks %q", what, msg, w)
		}
	}
	for _, n := range not {
		if strings.Contains(msg, n) {
			t.Errorf("%s: %q shows %q", what, msg, n)
		}
	}
	return msg
}

// A token with examples/policy-reader.hcl (read on creds/* only, so no config read) learns no
// identifier of a root credential from a failed creds read: not the OffBlocks api_key or the
// Bloq username a provider echoes, not the credentials of an unsettled rotation. Nor is a
// provider's token that is no Bearer token handed to it. Through the API and the CLI, in a
// real Vault; the server log keeps the detail.
func TestCredsReaderLearnsNoIdentifier(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, ids := seedAccounts(sim, url, "sec")
	ob, login := accts[0], accts[2]
	for _, a := range []account{ob, login} {
		a.config["request_timeout"] = "2s" // an unsettled rotation confirms for this long
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		sim.SetHostileTokens(nil)
		sim.SetOffBlocksLag(0)
		for _, a := range []account{ob, login} {
			v.cli(false, "delete", "apitokens/config/"+a.name, "force=true")
		}
	})
	r := withPolicy(t, v, "apitokens-reader", "../examples/policy-reader.hcl")
	key, user := ob.config["api_key"].(string), login.config["username"].(string)

	sim.Inject(simulator.RouteOffBlocksToken, simulator.Fault{Status: 401, Body: "apiKey " + key + " is not valid"})
	_, err := r.client.Logical().Read("apitokens/creds/" + ob.name)
	wantReaderError(t, "offblocks refusal", err, []string{"offblocks: mint token (POST /auth/token): status 401"}, []string{key})
	sim.Inject(simulator.RouteBloqAuth, simulator.Fault{Status: 403, Body: `{"message":"user ` + user + ` is locked"}`})
	out := r.cli(true, "read", "apitokens/creds/"+login.name)
	if !strings.Contains(out, "bloq: account token (POST /auth): status 403") || strings.Contains(out, user) {
		t.Errorf("CLI, bloq refusal: %s", out)
	}

	sim.SetHostileTokens(func(_, kind string) string {
		if kind == "refresh" {
			return ""
		}
		return "abc\nexport LD_PRELOAD=/tmp/x.so\r\n\x1b[2J"
	})
	_, err = r.client.Logical().Read("apitokens/creds/" + ob.name)
	wantReaderError(t, "hostile token", err, []string{"malformed response", "not a valid Bearer token"}, []string{"LD_PRELOAD"})
	sim.SetHostileTokens(nil)

	// A rotation the provider applies late: unsettled, since when, and no credential named.
	sim.SetOffBlocksLag(time.Hour)
	if _, err := v.client.Logical().Write("apitokens/rotate-root/"+ob.name, nil); err == nil {
		t.Fatal("a lagging rotation settled")
	}
	cfg, err := v.client.Logical().Read("apitokens/config/" + ob.name)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := cfg.Data["unsettled_credential"].(string)
	if next == "" {
		t.Fatalf("config read names no unsettled credential: %v", cfg.Data)
	}
	_, err = r.client.Logical().Read("apitokens/creds/" + ob.name)
	wantReaderError(t, "unsettled", err, []string{"unsettled since", "an operator must see config/" + ob.name},
		[]string{key, next})
	if pending := sim.OffBlocksPendingPairs(ids["offblocks"]); len(pending) == 0 {
		t.Fatal("the provider holds no pending change: the rotation was not what this test meant")
	}

	log, _ := os.ReadFile(v.logPath)
	if !strings.Contains(string(log), "creds read failed on the provider") || !strings.Contains(string(log), key) {
		t.Error("Vault's log lacks the creds failure's detail")
	}
}
