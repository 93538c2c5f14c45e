package apitokens

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const pathConfigHelpSyn = `Store a provider account's root credentials.`

const pathConfigHelpDesc = `
config/<name> holds one provider account: its provider (offblocks, bloq or opsnow, fixed at
creation), its API root and its root credentials. Writes create or update; an update changes
only the fields it names. Reads return every non-secret field and never a secret
(api_secret, client_secret, password, refresh_token, OpsNow's api_key).
`

func configFields() map[string]*framework.FieldSchema {
	secret := func(desc, name string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeString, Description: desc,
			DisplayAttrs: &framework.DisplayAttributes{Name: name, Sensitive: true}}
	}
	return map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Required: true,
			Description: "Name of the provider account."},
		"provider": {Type: framework.TypeString,
			AllowedValues: []any{"offblocks", "bloq", "opsnow"},
			Description:   "Provider: offblocks, bloq or opsnow. Required on create; immutable after."},
		"base_url": {Type: framework.TypeString,
			Description: "Provider API root. Defaults to the live URL. https:// required, except http:// to a loopback host."},
		"api_key": secret("OffBlocks: the integration's apiKey (a UUID; returned on read as an identifier). "+
			"OpsNow: the API key from the console (a secret, never returned).", "API key"),
		"api_secret": secret("OffBlocks: the integration's apiSecret.", "API secret"),
		"client_id": {Type: framework.TypeString,
			Description: "Bloq: client key id, for Client Access Tokens (1 h)."},
		"client_secret": secret("Bloq: client key secret.", "Client secret"),
		"username": {Type: framework.TypeString,
			Description: "Bloq: account login (email or user id), for Account Access Tokens (12 h) and client key rotation."},
		"password":      secret("Bloq: account password, sent with HTTP Basic.", "Password"),
		"refresh_token": secret("Bloq: a Client Refresh Token (1 y), used instead of client keys.", "Refresh token"),
		"grant_type": {Type: framework.TypeString,
			AllowedValues: []any{grantClientCredentials, grantPassword, grantRefreshToken},
			Description: "Bloq: client_credentials, password or refresh_token. Inferred from the fields given " +
				"when omitted (client keys win over a login, which is then used for rotation)."},
		"max_ttl": {Type: framework.TypeDurationSecond,
			Description: "Upper bound on a creds lease. 0 means no cap beyond the provider's expiry and the mount's maximum."},
		"request_timeout": {Type: framework.TypeDurationSecond, Default: 30,
			Description: "Deadline for one provider call, retries included. Default 30s; at most 10m."},
	}
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:        "config/" + framework.GenericNameRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "config"},
			Fields:         configFields(),
			ExistenceCheck: b.configExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite,
					Summary: "Create a provider account."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite,
					Summary: "Update a provider account; only the fields given change."},
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathConfigRead,
					Summary: "Read a provider account's non-secret fields."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete,
					Summary: "Delete a provider account. Issued tokens stay valid until they expire."},
			},
			HelpSynopsis:    pathConfigHelpSyn,
			HelpDescription: pathConfigHelpDesc,
		},
		{
			Pattern:      "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationSuffix: "configs"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathConfigList,
					Summary: "List provider accounts."},
			},
			HelpSynopsis:    "List provider accounts.",
			HelpDescription: "Lists the names of the accounts stored under config/.",
		},
	}
}

func (b *backend) configExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	c, err := getConfig(ctx, req.Storage, d.Get("name").(string))
	return c != nil, err
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()

	existing, err := getConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	c, err := applyFields(existing, d)
	if err != nil {
		return badRequest(err)
	}
	if err := b.putConfig(ctx, req.Storage, name, c); err != nil {
		return nil, err
	}
	return nil, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.lock(name)
	lock.RLock()
	defer lock.RUnlock()

	c, err := getConfig(ctx, req.Storage, name)
	if err != nil || c == nil {
		return nil, err
	}
	return &logical.Response{Data: c.publicData()}, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()

	if err := req.Storage.Delete(ctx, configKey(name)); err != nil {
		return nil, err
	}
	b.dropClient(name)
	return nil, nil
}

func (b *backend) pathConfigList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

// badRequest turns a *fieldError (or any user error) into a 400 that names the field.
func badRequest(err error) (*logical.Response, error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		return logical.ErrorResponse(fe.Error()), logical.ErrInvalidRequest
	}
	return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
}
