package apitokens

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
)

const pathRotateRootHelpDesc = `
Replaces the stored root credential of config/<name> with a new one and returns its
identifier, never its secret.

OffBlocks: a new apiKey (UUID v4) and apiSecret (40 hex characters) are generated here and
stored in the config as a fallback beside the current pair; then they are set with
PUT /auth/credentials, confirmed by minting a token (retried with backoff: the provider may
apply the change a moment late), and stored as the current pair.

Bloq (client keys plus an account login): the account's keys are listed and a WAL entry
marks the coming create call; a new client key is created (its secret exists only from
Bloq's answer), stored as a fallback, confirmed, stored as the current key, and then the old
key is deleted (a failed delete is a warning, retried later). A key orphaned by a crash
during the create call is named in a warning in Vault's log.

Tokens issued before are dead afterwards (OffBlocks' rule; Bloq's deleted key): revoke the
old leases with 'vault lease revoke -prefix <mount>/creds/<name>'.

A credential sent to the provider whose refusal was not conclusive is never discarded: it
stays a fallback until it, or another credential, is seen working, or an operator writes a
credential with force=true or deletes the config with force=true. While a fallback is held
the rotation is unsettled: creds reads hand out no token of the old credential (it may die at
any moment) and settle it first, as Vault's periodic function does every minute; the
rotation that left it so fails with a 502 that says so, and a new one is refused with a 400.

These configs cannot rotate, and the request is refused with a 400: ` + cannotRotate + `.
`

func pathRotateRoot(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "rotate-root/" + framework.GenericNameRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationVerb: "rotate", OperationSuffix: "root"},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Required: true,
				Description: "Name of the provider account (config/<name>)."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathRotateRoot,
				Summary:  "Rotate the account's root credential.",
			},
		},
		HelpSynopsis:    "Rotate a provider account's root credential.",
		HelpDescription: pathRotateRootHelpDesc,
	}
}

func (b *backend) pathRotateRoot(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	cfg, warnings, err := b.rotate(ctx, req.Storage, name, triggerManual)
	if err != nil {
		return errorResponse(err)
	}
	data := map[string]any{"last_rotated": cfg.LastRotated.UTC().Format(time.RFC3339)}
	switch cfg.Provider {
	case offblocks.Name:
		data["api_key"] = cfg.APIKey
		warnings = append(warnings, fmt.Sprintf("tokens issued before this rotation no longer work; "+
			"revoke their leases with: vault lease revoke -prefix %screds/%s", req.MountPoint, name))
	case bloq.Name:
		data["client_id"] = cfg.ClientID
		warnings = append(warnings, fmt.Sprintf("tokens issued with the old client key stop working once it is deleted; "+
			"revoke their leases with: vault lease revoke -prefix %screds/%s", req.MountPoint, name))
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}
