//go:build acceptance

package acceptance

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// refusedStreak follows one rendered file: the longest time it held a token the provider
// refuses.
type refusedStreak struct {
	longest  time.Duration
	start    time.Time
	refusing bool
}

func (r *refusedStreak) observe(at time.Time, refused bool) {
	switch {
	case refused && !r.refusing:
		r.refusing, r.start = true, at
	case !refused && r.refusing:
		r.refusing = false
		r.longest = max(r.longest, at.Sub(r.start))
	}
	if r.refusing {
		r.longest = max(r.longest, at.Sub(r.start))
	}
}

// Scheduled rotation on Vault Community Edition, in a real Vault:
//   - a config with rotation_period=1m that nobody reads rotates within two minutes, by the
//     plugin's PeriodicFunc alone;
//   - Vault Agent renders an OffBlocks token while three scheduled rotations happen, and the
//     rendered file is checked at the provider every second: with leases capped at the next
//     rotation the file holds a dead token at most for Agent's own render delay; the same
//     measurement without the cap (the test build's switch) is the contrast;
//   - the metrics show the scheduled rotations, through the HTTP API with a token that may
//     read them, and a token without that right is refused.
func TestScheduledRotationInVault(t *testing.T) {
	v, sim, url := shared(t)
	// The contrast mount: the test build, with leases not capped at the next rotation.
	if err := v.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName + "-" + versionCrash,
		SHA256: shas[versionCrash], Version: versionCrash, Env: []string{noLeaseCapEnv + "=1"}}); err != nil {
		t.Fatal(err)
	}
	if err := v.client.Sys().Mount("apitokens-nocap", &api.MountInput{Type: pluginName,
		Config: api.MountConfigInput{PluginVersion: versionCrash}}); err != nil {
		t.Fatal(err)
	}
	capped, _, cappedIDs := seedAccounts(sim, url, "sched-capped")
	uncapped, _, uncappedIDs := seedAccounts(sim, url, "sched-uncapped")
	quiet, _, quietIDs := seedAccounts(sim, url, "sched-quiet")
	write := func(mount string, a account) {
		a.config["rotation_period"] = "1m"
		if _, err := v.client.Logical().Write(mount+"/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
	}
	write("apitokens", quiet[0])
	quietSince := time.Now()
	write("apitokens", capped[0])
	write("apitokens-nocap", uncapped[0])

	read := startAgentFor(t, v, map[string]string{"capped": "apitokens/creds/" + capped[0].name,
		"uncapped": "apitokens-nocap/creds/" + uncapped[0].name})
	streaks := map[string]*refusedStreak{"capped": {}, "uncapped": {}}
	key := func(ids map[string]string) string { k, _ := sim.OffBlocksPair(ids["offblocks"]); return k }
	cappedKey, quietKey := key(cappedIDs), key(quietIDs)
	rotations, quietRotatedAfter := 0, time.Duration(0)
	start := time.Now()
	for rotations < 3 && time.Since(start) < 6*time.Minute {
		time.Sleep(time.Second)
		now := time.Now()
		for which := range streaks {
			tok := read(which)
			if tok == "" {
				continue // not rendered yet
			}
			_, err := sim.Validate(tok)
			streaks[which].observe(now, err != nil)
		}
		if k := key(cappedIDs); k != cappedKey {
			rotations, cappedKey = rotations+1, k
		}
		if quietRotatedAfter == 0 && key(quietIDs) != quietKey {
			quietRotatedAfter = time.Since(quietSince)
		}
	}
	if rotations < 3 {
		t.Fatalf("only %d scheduled rotations of the Agent's config in %s", rotations, time.Since(start).Round(time.Second))
	}
	if quietRotatedAfter == 0 || quietRotatedAfter > 2*time.Minute {
		t.Errorf("rotation_period=1m with no call: rotated after %s (want within 2m)", quietRotatedAfter.Round(time.Second))
	}
	if key(uncappedIDs) == "" {
		t.Fatal("no uncapped account")
	}
	c, u := streaks["capped"].longest, streaks["uncapped"].longest
	t.Logf("%d scheduled rotations in %s; longest time the rendered file held a token the provider refuses: "+
		"%s with leases capped at the next rotation, %s without (contrast); the unread config rotated %s after its write",
		rotations, time.Since(start).Round(time.Second), c.Round(time.Second), u.Round(time.Second), quietRotatedAfter.Round(time.Second))
	if c > 10*time.Second {
		t.Errorf("with capped leases the file held a dead token for %s (goal: Agent's render delay, a few seconds)", c)
	}

	checkMetricsAccess(t, v)
}

// checkMetricsAccess scrapes apitokens/metrics through the HTTP API with a token whose
// policy allows reading it, and is refused (403) with one that does not.
func checkMetricsAccess(t *testing.T, v *vaultServer) {
	t.Helper()
	if err := v.client.Sys().PutPolicy("metrics-reader", `path "apitokens/metrics" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	token := func(policy string) string {
		s, err := v.client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}})
		if err != nil {
			t.Fatal(err)
		}
		return s.Auth.ClientToken
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, v.addr+"/v1/apitokens/metrics?format=prometheus", nil)
		req.Header.Set("X-Vault-Token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get(token("metrics-reader"))
	if status != http.StatusOK || !strings.Contains(body, `trigger="scheduled"`) ||
		!strings.Contains(body, "# TYPE apitokens_provider_calls_total counter") {
		t.Fatalf("metrics with read on the path: %d\n%.600s", status, body)
	}
	if status, _ := get(token("default")); status != http.StatusForbidden {
		t.Fatalf("metrics without read on the path: %d, want 403", status)
	}
	t.Logf("metrics scraped through the HTTP API (%d bytes of Prometheus text)", len(body))
}
