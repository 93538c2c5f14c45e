package apitokens

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
)

// FuzzConfigFields feeds arbitrary field values to config validation: it must never panic,
// and whatever it accepts must hold the invariants the rest of the engine relies on.
func FuzzConfigFields(f *testing.F) {
	f.Add("offblocks", "", "6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f", "secret", "", "", "", "", "", "", "10m")
	f.Add("bloq", "http://127.0.0.1:9/x", "", "", "cid", "cs", "u", "p", "", "", "0")
	f.Add("bloq", "https://h", "", "", "", "", "", "", "rt", "refresh_token", "1h")
	f.Add("opsnow", "http://[::1]:80", "k", "", "", "", "", "", "", "", "-1")
	f.Fuzz(func(t *testing.T, provider, baseURL, apiKey, apiSecret, clientID, clientSecret, user, pass, refresh, grant, maxTTL string) {
		raw := map[string]any{"provider": provider, "api_key": apiKey, "api_secret": apiSecret,
			"client_id": clientID, "client_secret": clientSecret, "username": user, "password": pass,
			"refresh_token": refresh, "grant_type": grant, "max_ttl": maxTTL}
		if baseURL != "" {
			raw["base_url"] = baseURL
		}
		d := &framework.FieldData{Raw: raw, Schema: configFields()}
		if err := d.Validate(); err != nil {
			return // the framework's own type checks refused it (a 400 naming the field)
		}
		c, _, err := applyFields(nil, d, time.Now())
		if err != nil {
			if _, ok := err.(*fieldError); !ok {
				t.Fatalf("non-field error %T: %v", err, err)
			}
			return
		}
		if !knownProvider(c.Provider) {
			t.Fatalf("accepted provider %q", c.Provider)
		}
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) || strings.HasSuffix(c.BaseURL, "/") {
			t.Fatalf("accepted base_url %q", c.BaseURL)
		}
		if c.MaxTTL < 0 || c.RequestTimeout <= 0 {
			t.Fatalf("accepted durations %s %s", c.MaxTTL, c.RequestTimeout)
		}
		var incomplete bool
		switch c.Provider {
		case "offblocks":
			incomplete = c.ob().APIKey == "" || c.ob().APISecret == ""
		case "opsnow":
			incomplete = c.ops().APIKey == ""
		case "bloq":
			b := c.bq()
			incomplete = b.GrantType == bloq.GrantClientCredentials && (b.ClientID == "" || b.ClientSecret == "") ||
				b.GrantType == bloq.GrantPassword && (b.Username == "" || b.Password == "") ||
				b.GrantType == bloq.GrantRefreshToken && b.RefreshToken == "" || b.GrantType == ""
		}
		if incomplete {
			t.Fatalf("accepted an incomplete credential for %s", c.Provider)
		}
	})
}
