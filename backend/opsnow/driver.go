package opsnow

import (
	"context"
	"encoding/json"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

func init() { registry.Register(Driver{}) }

// Credentials are an OpsNow config's credential: the API key, a secret (no identifier comes
// with it), stored under the config's api_key.
type Credentials struct {
	APIKey string `json:"api_key,omitempty"`
}

// Driver is OpsNow in the registry: an API key that mints access tokens. It has no rotation
// API (keys are issued in the web console).
type Driver struct{}

func (Driver) Name() string           { return Name }
func (Driver) Display() string        { return "OpsNow" }
func (Driver) Order() int             { return 30 }
func (Driver) DefaultBaseURL() string { return DefaultBaseURL }

// Fields: the API key, a secret, bounded as every secret is (4 KiB).
func (Driver) Fields() []registry.Field {
	return []registry.Field{
		{Name: "api_key", Display: "API key", Type: registry.Secret, MaxBytes: 4 << 10,
			Description: "the API key from the console (a secret, never returned)."},
	}
}

func (Driver) DecodeCredential(data []byte) (registry.Credential, error) {
	var c Credentials
	err := json.Unmarshal(data, &c)
	return c, err
}

func (Driver) Validate(c registry.Credential, _ bool, _ func(string) bool) (registry.Credential, error) {
	if asCredentials(c).APIKey == "" {
		return nil, registry.FieldErrorf("api_key", "is required for provider opsnow")
	}
	return c, nil
}

func (Driver) Kind(registry.Credential) registry.TokenKind {
	return registry.TokenKind{Name: "access token", Lifetime: DefaultLifetime}
}

func (Driver) Rolls(registry.Credential) bool                     { return false }
func (Driver) WriteWarnings(string, registry.Credential) []string { return nil }

func (Driver) Client(api *apiclient.Client, now func() time.Time) registry.Client {
	return driverClient{New(api, now)}
}

func (c Credentials) Provider() string { return Name }

// asCredentials is c as this provider's credential; a nil or another provider's is empty
// (never a panic: it then mints nothing and is refused).
func asCredentials(c registry.Credential) Credentials {
	cr, _ := c.(Credentials)
	return cr
}

func (c Credentials) Field(name string) any {
	if name == "api_key" {
		return c.APIKey
	}
	return nil
}

func (c Credentials) With(name string, v any) registry.Credential {
	if name == "api_key" {
		c.APIKey = registry.Str(v)
	}
	return c
}

// driverClient mints with the API key.
type driverClient struct{ c *Client }

func (d driverClient) Mint(ctx context.Context, cr registry.Credential) (registry.Minted, error) {
	t, err := d.c.Mint(ctx, asCredentials(cr).APIKey)
	return registry.Minted{Token: t}, err
}
