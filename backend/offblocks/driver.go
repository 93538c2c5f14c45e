package offblocks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

func init() { registry.Register(Driver{}) }

// Driver is OffBlocks in the registry: an API key pair that mints access tokens, rotated by
// choosing a new pair and PUTting it with a token of the current one.
type Driver struct{}

func (Driver) Name() string           { return Name }
func (Driver) Display() string        { return "OffBlocks" }
func (Driver) Order() int             { return 10 }
func (Driver) DefaultBaseURL() string { return DefaultBaseURL }

// Fields: the pair, both replaced by a rotation; the apiKey names the account. The apiKey is
// a 36-byte UUID; the secret 40 bytes, bounded as every secret is (4 KiB: room for any
// password manager's output).
func (Driver) Fields() []registry.Field {
	return []registry.Field{
		{Name: "api_key", Display: "API key", Type: registry.String, Identifier: true, Root: true, MaxBytes: 256,
			Description: "the integration's apiKey (a UUID; returned on read as an identifier)."},
		{Name: "api_secret", Display: "API secret", Type: registry.Secret, Root: true, MaxBytes: 4 << 10,
			Description: "the integration's apiSecret."},
	}
}

func (Driver) DecodeCredential(data []byte) (registry.Credential, error) {
	var c Credentials
	err := json.Unmarshal(data, &c)
	return c, err
}

// Validate: both halves of the pair, the apiKey a UUID.
func (Driver) Validate(c registry.Credential, _ bool, _ func(string) bool) (registry.Credential, error) {
	cr := asCredentials(c)
	if cr.APIKey == "" {
		return nil, registry.FieldErrorf("api_key", "is required for provider offblocks")
	}
	if err := ValidateAPIKey(cr.APIKey); err != nil {
		return nil, registry.FieldErrorf("api_key", "%s", err.Error())
	}
	if cr.APISecret == "" {
		return nil, registry.FieldErrorf("api_secret", "is required for provider offblocks")
	}
	return cr, nil
}

func (Driver) Kind(registry.Credential) registry.TokenKind {
	return registry.TokenKind{Name: "access token", Lifetime: DefaultLifetime}
}

func (Driver) Rolls(registry.Credential) bool { return false }

// WriteWarnings: the documented API root ends in /v1, and the calls' paths follow it.
func (Driver) WriteWarnings(baseURL string, _ registry.Credential) []string {
	if strings.HasSuffix(baseURL, "/v1") {
		return nil
	}
	return []string{"base_url: the documented OffBlocks API root ends in /v1 (such as " + DefaultBaseURL +
		"); calls go to " + baseURL + "/auth/token"}
}

func (Driver) Client(api *apiclient.Client, now func() time.Time) registry.Client {
	return driverClient{New(api, now)}
}

// CanRotate: every pair can.
func (Driver) CanRotate(registry.Credential) error { return nil }
func (Driver) CannotRotate() string                { return "" }

// Exclusive: the PUT kills the old pair (and every token it minted).
func (driverClient) Exclusive() bool { return true }

func (Driver) RotatedWarning() string { return "tokens issued before this rotation no longer work" }

func (Driver) TokensDie() string { return "OffBlocks' rule" }

func (Driver) RotationHelp() string {
	return `OffBlocks: a new apiKey (UUID v4) and apiSecret (40 hex characters) are generated here and
stored in the config as a fallback beside the current pair; then they are set with
PUT /auth/credentials, confirmed by minting a token (retried with backoff: the provider may
apply the change a moment late), and stored as the current pair.`
}

func (c Credentials) Provider() string { return Name }

// asCredentials is c as this provider's credential; a nil or another provider's is empty
// (never a panic: it then mints nothing and is refused).
func asCredentials(c registry.Credential) Credentials {
	cr, _ := c.(Credentials)
	return cr
}

func (c Credentials) Field(name string) any {
	switch name {
	case "api_key":
		return c.APIKey
	case "api_secret":
		return c.APISecret
	}
	return nil
}

func (c Credentials) With(name string, v any) registry.Credential {
	switch name {
	case "api_key":
		c.APIKey = registry.Str(v)
	case "api_secret":
		c.APISecret = registry.Str(v)
	}
	return c
}

// driverClient mints with the pair and rotates it.
type driverClient struct{ c *Client }

func (d driverClient) Mint(ctx context.Context, cr registry.Credential) (registry.Minted, error) {
	t, err := d.c.Mint(ctx, asCredentials(cr))
	return registry.Minted{Token: t}, err
}

func (driverClient) Prepare(_ context.Context, cur registry.Credential) (registry.Credential, error) {
	return GenerateCredentials()
}

// Activate PUTs next with a Bearer of cur; a cur that mints no token changes nothing.
func (d driverClient) Activate(ctx context.Context, cur, next registry.Credential) error {
	bearer, err := d.Mint(ctx, cur)
	if err != nil {
		return fmt.Errorf("%w: %w", registry.ErrUnchanged, err)
	}
	return d.c.UpdateCredentials(ctx, bearer.Value, asCredentials(next))
}

// Retire has nothing to do: OffBlocks kills the old pair when the new one is PUT.
func (driverClient) Retire(context.Context, registry.Credential) error { return nil }
