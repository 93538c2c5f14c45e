package bloq

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

func init() { registry.Register(Driver{}) }

// Grant types, as written in config (grant_type).
const (
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
)

// Credentials are a Bloq config's credential: client keys, an account login, or a Client
// Refresh Token, and the grant that mints with them. Stored under the config's keys below.
type Credentials struct {
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	GrantType    string `json:"grant_type,omitempty"`
}

// Driver is Bloq in the registry: client access tokens from client keys or a refresh
// token, account access tokens from a login; client keys rotate when a login is set too.
type Driver struct{}

func (Driver) Name() string           { return Name }
func (Driver) Display() string        { return "Bloq" }
func (Driver) Order() int             { return 20 }
func (Driver) DefaultBaseURL() string { return DefaultBaseURL }

// Fields: the client keys are the rotatable pair; the login (used to rotate them) and a
// refresh token are the account's. A client_id is 40 hex characters and a username an email
// address (at most 254 bytes, RFC 5321): 256. Secrets are 80 bytes, bounded at 4 KiB; a
// Client Refresh Token is a JWT, whose claims can make it long: 16 KiB.
func (Driver) Fields() []registry.Field {
	return []registry.Field{
		{Name: "grant_type", Display: "Grant type", Type: registry.Enum,
			Allowed: []string{GrantClientCredentials, GrantPassword, GrantRefreshToken},
			Description: "client_credentials, password or refresh_token. Inferred from the fields given when omitted " +
				"(client keys win over a login, which is then used for rotation)."},
		{Name: "client_id", Display: "Client ID", Type: registry.String, Identifier: true, Root: true, MaxBytes: 256,
			Grants: []string{GrantClientCredentials}, Description: "client key id, for Client Access Tokens (1 h)."},
		{Name: "client_secret", Display: "Client secret", Type: registry.Secret, Root: true, MaxBytes: 4 << 10,
			Grants: []string{GrantClientCredentials}, Description: "client key secret."},
		{Name: "username", Display: "Username", Type: registry.String, Identifier: true, MaxBytes: 256,
			Grants:      []string{GrantPassword},
			Description: "account login (email or user id), for Account Access Tokens (12 h) and client key rotation."},
		{Name: "password", Display: "Password", Type: registry.Secret, MaxBytes: 4 << 10,
			Grants: []string{GrantPassword}, Description: "account password, sent with HTTP Basic."},
		{Name: "refresh_token", Display: "Refresh token", Type: registry.Secret, Rolling: true, MaxBytes: 16 << 10,
			Grants: []string{GrantRefreshToken}, Description: "a Client Refresh Token (1 y), used instead of client keys."},
	}
}

func (Driver) DecodeCredential(data []byte) (registry.Credential, error) {
	var c Credentials
	err := json.Unmarshal(data, &c)
	return c, err
}

// Validate settles grant_type: given, kept from the stored config on update, or inferred
// on create (client keys, with or without an account login, mean client_credentials; a login
// alone, password; a refresh token alone, refresh_token). It then checks that every field
// the grant needs (Field.Grants) is there.
func (d Driver) Validate(c registry.Credential, create bool, given func(string) bool) (registry.Credential, error) {
	cr := asCredentials(c)
	if (cr.Username == "") != (cr.Password == "") {
		if cr.Username == "" {
			return nil, registry.FieldErrorf("username", "is required with password")
		}
		return nil, registry.FieldErrorf("password", "is required with username")
	}
	hasKeys := cr.ClientID != "" || cr.ClientSecret != ""
	hasLogin := cr.Username != ""
	hasRefresh := cr.RefreshToken != ""
	grants := []string{GrantClientCredentials, GrantPassword, GrantRefreshToken}
	if given("grant_type") && cr.GrantType != "" && !slices.Contains(grants, cr.GrantType) {
		return nil, registry.FieldErrorf("grant_type", "unknown grant %q: use client_credentials, password or refresh_token", cr.GrantType)
	}
	if cr.GrantType == "" || (create && !given("grant_type")) {
		switch {
		case hasRefresh && (hasKeys || hasLogin):
			return nil, registry.FieldErrorf("grant_type", "is ambiguous: refresh_token was given with client keys or a login; set grant_type")
		case hasRefresh:
			cr.GrantType = GrantRefreshToken
		case hasKeys:
			cr.GrantType = GrantClientCredentials
		case hasLogin:
			cr.GrantType = GrantPassword
		default:
			return nil, registry.FieldErrorf("client_id", "provider bloq needs client_id and client_secret, username and password, or refresh_token")
		}
	}
	for _, f := range d.Fields() {
		if slices.Contains(f.Grants, cr.GrantType) && registry.IsZero(cr.Field(f.Name)) {
			return nil, registry.FieldErrorf(f.Name, "is required for grant_type %s", cr.GrantType)
		}
	}
	return cr, nil
}

// Kind: an account token for a login, else a client token (client keys and the refresh grant
// both mint client tokens).
func (Driver) Kind(c registry.Credential) registry.TokenKind {
	if asCredentials(c).GrantType == GrantPassword {
		return registry.TokenKind{Name: "account access token", Lifetime: AccountTokenLifetime}
	}
	return registry.TokenKind{Name: "client access token", Lifetime: ClientTokenLifetime}
}

// Rolls: the refresh grant, whose answer may carry a new refresh token.
func (Driver) Rolls(c registry.Credential) bool {
	return asCredentials(c).GrantType == GrantRefreshToken
}

func (Driver) WriteWarnings(string, registry.Credential) []string { return nil }

func (Driver) Client(api *apiclient.Client, now func() time.Time) registry.Client {
	return driverClient{New(api, now)}
}

// CanRotate: client keys rotate, with an account login to create and delete them.
func (Driver) CanRotate(cur registry.Credential) error {
	cr := asCredentials(cur)
	if cr.GrantType != GrantClientCredentials || cr.ClientID == "" {
		return errors.New("bloq rotates client keys only: this config has none (grant_type " + cr.GrantType + ")")
	}
	if cr.Username == "" || cr.Password == "" {
		return errors.New("bloq client keys can be rotated only with an account login: set username and password on the config")
	}
	return nil
}

func (Driver) CannotRotate() string {
	return "Bloq without both client keys and an account login (username and password)"
}

// Exclusive is false: the old key works until Retire deletes it.
func (driverClient) Exclusive() bool { return false }

func (Driver) RotatedWarning() string {
	return "tokens issued with the old client key stop working once it is deleted"
}

func (Driver) TokensDie() string { return "Bloq's deleted key" }

func (Driver) RotationHelp() string {
	return `Bloq (client keys plus an account login): the account's keys are listed and a WAL entry
marks the coming create call; a new client key is created (its secret exists only from
Bloq's answer), stored as a fallback, confirmed, stored as the current key, and then the old
key is deleted (a failed delete is a warning, retried later). A key orphaned by a crash
during the create call is named in a warning in Vault's log.`
}

func (c Credentials) Provider() string { return Name }

// asCredentials is c as this provider's credential; a nil or another provider's is empty
// (never a panic: it then mints nothing and is refused).
func asCredentials(c registry.Credential) Credentials {
	cr, _ := c.(Credentials)
	return cr
}

func (c Credentials) Field(name string) any {
	if p := c.ptr(name); p != nil {
		return *p
	}
	return nil
}

func (c Credentials) With(name string, v any) registry.Credential {
	if p := c.ptr(name); p != nil {
		*p = registry.Str(v)
	}
	return c
}

func (c *Credentials) ptr(name string) *string {
	switch name {
	case "client_id":
		return &c.ClientID
	case "client_secret":
		return &c.ClientSecret
	case "username":
		return &c.Username
	case "password":
		return &c.Password
	case "refresh_token":
		return &c.RefreshToken
	case "grant_type":
		return &c.GrantType
	}
	return nil
}

// driverClient mints with the config's grant and rotates client keys with the login.
type driverClient struct{ c *Client }

func (d driverClient) Mint(ctx context.Context, cr registry.Credential) (registry.Minted, error) {
	c := asCredentials(cr)
	switch c.GrantType {
	case GrantPassword:
		tr, err := d.c.AccountToken(ctx, c.Username, c.Password)
		return registry.Minted{Token: tr.Token}, err
	case GrantRefreshToken:
		tr, err := d.c.Refresh(ctx, c.RefreshToken)
		m := registry.Minted{Token: tr.Token}
		if tr.RefreshToken != "" && tr.RefreshToken != c.RefreshToken {
			m.Rolled = tr.RefreshToken // even with an error: it must not be lost
		}
		return m, err
	default:
		tr, err := d.c.ClientToken(ctx, c.ClientID, c.ClientSecret)
		return registry.Minted{Token: tr.Token}, err
	}
}

func (d driverClient) account(ctx context.Context, c Credentials) (string, error) {
	tr, err := d.c.AccountToken(ctx, c.Username, c.Password)
	return tr.Token.Value, err
}

// Prepare creates a new key with an account token; the rest of cur stays.
func (d driverClient) Prepare(ctx context.Context, cur registry.Credential) (registry.Credential, error) {
	next := asCredentials(cur)
	acct, err := d.account(ctx, next)
	if err != nil {
		return nil, err
	}
	k, err := d.c.CreateClientKey(ctx, acct)
	if err != nil {
		return nil, err
	}
	next.ClientID, next.ClientSecret = k.ClientID, k.Secret
	return next, nil
}

// Activate has nothing to do: a new Bloq key works as soon as it exists.
func (driverClient) Activate(context.Context, registry.Credential, registry.Credential) error {
	return nil
}

// Inventory lists the account's client keys: each by clientId, or by id when the list
// carries no clientId.
func (d driverClient) Inventory(ctx context.Context, cur registry.Credential) ([]string, error) {
	acct, err := d.account(ctx, asCredentials(cur))
	if err != nil {
		return nil, err
	}
	keys, err := d.c.ListClientKeys(ctx, acct)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if k.ClientID != "" {
			ids = append(ids, k.ClientID)
		} else {
			ids = append(ids, k.ID)
		}
	}
	return ids, nil
}

// Retire deletes the key gone.ClientID, found by listing the keys, logging in with gone's
// username and password; a key that is not listed is registry.ErrNotListed.
func (d driverClient) Retire(ctx context.Context, gone registry.Credential) error {
	g := asCredentials(gone)
	acct, err := d.account(ctx, g)
	if err != nil {
		return err
	}
	keys, err := d.c.ListClientKeys(ctx, acct)
	if err != nil {
		return err
	}
	id := KeyIDFor(keys, g.ClientID)
	if id == "" {
		return registry.ErrNotListed
	}
	return d.c.DeleteClientKey(ctx, acct, id)
}
