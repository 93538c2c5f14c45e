//go:build acceptance

package acceptance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/hashicorp/vault/api"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// account is one seeded provider account and the config that points at it.
type account struct {
	name   string
	config map[string]any
	life   time.Duration
}

// seedAccounts creates one account per provider and grant at the simulator, with names
// prefixed by p so tests sharing a simulator do not collide.
func seedAccounts(sim *simulator.Server, url, p string) (accts []account, secrets []string, ids map[string]string) {
	obKey, obSecret := uuid.NewString(), strings.Repeat("ab", 20)
	obID := sim.AddOffBlocks(obKey, obSecret)
	email, pass := p+"@example.com", "pw-"+uuid.NewString()
	uid := sim.AddBloqUser(email, pass)
	cid, csecret := strings.ReplaceAll(uuid.NewString(), "-", "")+"00000000", strings.Repeat("cd", 40)
	kid := sim.AddBloqKey(uid, cid, csecret)
	refresh := sim.BloqRefreshToken(kid)
	opsKey := "ops-" + uuid.NewString()
	sim.AddOpsNowKey(opsKey)
	l := sharedLifetimes
	accts = []account{
		{p + "-offblocks", map[string]any{"provider": "offblocks", "base_url": url + simulator.OffBlocksPrefix,
			"api_key": obKey, "api_secret": obSecret}, l.OffBlocks},
		{p + "-bloq-keys", map[string]any{"provider": "bloq", "base_url": url + simulator.BloqPrefix,
			"client_id": cid, "client_secret": csecret, "username": email, "password": pass}, l.BloqClient},
		{p + "-bloq-login", map[string]any{"provider": "bloq", "base_url": url + simulator.BloqPrefix,
			"username": email, "password": pass}, l.BloqAccount},
		{p + "-bloq-refresh", map[string]any{"provider": "bloq", "base_url": url + simulator.BloqPrefix,
			"refresh_token": refresh}, l.BloqClient},
		{p + "-opsnow", map[string]any{"provider": "opsnow", "base_url": url + simulator.OpsNowPrefix,
			"api_key": opsKey}, l.OpsNow},
	}
	return accts, []string{obSecret, pass, csecret, refresh, opsKey}, map[string]string{"offblocks": obID, "bloq-user": uid}
}

// checkSecret verifies one creds response: a token the provider accepts, expires_at equal
// to the token's own exp, and a non-renewable lease ending 60 s before it.
func checkSecret(t *testing.T, sim *simulator.Server, name string, s *api.Secret, life time.Duration, readAt time.Time) {
	t.Helper()
	tok, _ := s.Data["token"].(string)
	if _, err := sim.Validate(tok); err != nil {
		t.Fatalf("%s: the provider refuses the token: %v", name, err)
	}
	if s.Data["token_type"] != "Bearer" {
		t.Errorf("%s: token_type = %v", name, s.Data["token_type"])
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	exp, _ := claims.GetExpirationTime()
	if s.Data["expires_at"] != exp.UTC().Format(time.RFC3339) {
		t.Errorf("%s: expires_at %v, token exp %s", name, s.Data["expires_at"], exp.UTC().Format(time.RFC3339))
	}
	// lease = exp - (time of minting) - 60 s, to the second; minting happened after readAt.
	upper := exp.Sub(readAt) - time.Minute
	got := time.Duration(s.LeaseDuration) * time.Second
	if got > upper || got < upper-5*time.Second {
		t.Errorf("%s: lease_duration %s, want within 5s below %s", name, got, upper)
	}
	if d := exp.Sub(readAt); d < life-5*time.Second || d > life+time.Second {
		t.Errorf("%s: token lives %s, simulator issued %s", name, d, life)
	}
	if s.Renewable || s.LeaseID == "" {
		t.Errorf("%s: renewable=%v lease_id=%q", name, s.Renewable, s.LeaseID)
	}
}

func TestCredsEveryProviderAndGrant(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, _ := seedAccounts(sim, url, "creds")
	for _, a := range accts {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
		readAt := time.Now()
		s, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		checkSecret(t, sim, a.name, s, a.life, readAt)

		// The same through the CLI.
		readAt = time.Now()
		out := v.cli(false, "read", "-format=json", "apitokens/creds/"+a.name)
		var cs api.Secret
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			t.Fatal(err)
		}
		checkSecret(t, sim, a.name+" (cli)", &cs, a.life, readAt)
	}
}

func TestCredsMaxTTLAndRevoke(t *testing.T) {
	v, sim, url := shared(t)
	accts, _, _ := seedAccounts(sim, url, "cap")
	a := accts[0]
	a.config["max_ttl"] = "45s"
	if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	s, err := v.client.Logical().Read("apitokens/creds/" + a.name)
	if err != nil {
		t.Fatal(err)
	}
	if s.LeaseDuration != 45 || s.Renewable {
		t.Errorf("max_ttl 45s: lease %d renewable %v", s.LeaseDuration, s.Renewable)
	}
	// Renewal is refused; revocation succeeds and is a documented no-op upstream.
	if _, err := v.client.Sys().Renew(s.LeaseID, 0); err == nil {
		t.Error("a non-renewable lease was renewed")
	}
	// -sync: without it the CLI queues the revocation and answers at once, and a lookup right
	// after can still find the lease (it did, once, on a loaded machine).
	if out := v.cli(false, "lease", "revoke", "-sync", s.LeaseID); !strings.Contains(out, "Success") {
		t.Errorf("revoke -sync: %s", out)
	}
	if _, err := v.client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": s.LeaseID}); err == nil {
		t.Error("the lease still exists after revoke")
	}
	if _, err := sim.Validate(s.Data["token"].(string)); err != nil {
		t.Errorf("revoking the lease changed the provider's token: %v", err)
	}
	out := v.cli(false, "lease", "revoke", "-prefix", "apitokens/creds/"+a.name)
	if !strings.Contains(out, "Success") && !strings.Contains(out, "queued") {
		t.Errorf("prefix revoke: %s", out)
	}

	// The mount's maximum lease caps every lease; Vault applies it (the plugin does not ask
	// for it on every read).
	if err := v.client.Sys().Mount("apitokens-cap", &api.MountInput{Type: pluginName,
		Config: api.MountConfigInput{PluginVersion: version1, MaxLeaseTTL: "90s"}}); err != nil {
		t.Fatal(err)
	}
	delete(a.config, "max_ttl")
	if _, err := v.client.Logical().Write("apitokens-cap/config/"+a.name, a.config); err != nil {
		t.Fatal(err)
	}
	if s, err = v.client.Logical().Read("apitokens-cap/creds/" + a.name); err != nil {
		t.Fatal(err)
	}
	if s.LeaseDuration != 90 {
		t.Errorf("mount max_lease_ttl 90s: lease %d", s.LeaseDuration)
	}
}

func TestRotateRootInVault(t *testing.T) {
	v, sim, url := shared(t)
	accts, secrets, ids := seedAccounts(sim, url, "rot")
	for _, a := range accts[:2] { // offblocks, bloq with keys and login
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
		before, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil {
			t.Fatal(err)
		}
		out := v.cli(false, "write", "-format=json", "-f", "apitokens/rotate-root/"+a.name)
		for _, sec := range secrets {
			if strings.Contains(out, sec) {
				t.Errorf("%s: rotate response contains an old secret", a.name)
			}
		}
		var resp api.Secret
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatal(err)
		}
		switch a.config["provider"] {
		case "offblocks":
			key, secret := sim.OffBlocksPair(ids["offblocks"])
			if resp.Data["api_key"] != key || key == a.config["api_key"] || strings.Contains(out, secret) {
				t.Errorf("offblocks rotation: response %v, provider key %s", resp.Data, key)
			}
			if _, err := sim.Validate(before.Data["token"].(string)); err == nil {
				t.Error("offblocks: a pre-rotation token still works at the provider")
			}
		case "bloq":
			keys := sim.BloqClientIDs(ids["bloq-user"])
			if len(keys) != 1 || resp.Data["client_id"] != keys[0] || keys[0] == a.config["client_id"] {
				t.Errorf("bloq rotation: response %v, provider keys %v", resp.Data, keys)
			}
			if _, err := sim.Validate(before.Data["token"].(string)); err == nil {
				t.Error("bloq: a token of the deleted key still works at the provider")
			}
		}
		after, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Validate(after.Data["token"].(string)); err != nil {
			t.Errorf("%s: post-rotation token refused: %v", a.name, err)
		}
		cfg, _ := v.client.Logical().Read("apitokens/config/" + a.name)
		if cfg.Data["last_rotated"] == nil || strings.Contains(fmt.Sprint(cfg.Data), "secret") {
			t.Errorf("%s: config after rotation = %v", a.name, cfg.Data)
		}
	}
}
