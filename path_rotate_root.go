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
written, with the old pair, to a seal-wrapped WAL entry; then they are set with
PUT /auth/credentials, confirmed by minting a token (retried with backoff: the provider may
apply the change a moment late), and stored. Every token issued before is dead afterwards
(the provider's rule): revoke the old leases with 'vault lease revoke -prefix <mount>/creds/<name>'.

Bloq (client keys plus an account login): the account's keys are listed and a WAL entry
marks the coming create call; a new client key is created (its secret exists only from
Bloq's answer), written to a WAL entry, confirmed, stored, and then the old key is deleted
(a failed delete is a warning). A key orphaned by a crash during the create call is named
in a warning in Vault's log.

An interrupted rotation is settled by asking the provider which credential works, on the
next creds read whose credential is refused or by Vault's rollback; the new credential is
never given up on a refusal while the old one could still be on its way out. If the provider
has not confirmed the new credential within request_timeout, the request fails and says the
rotation is unsettled; the WAL entry keeps it. OpsNow, and Bloq without an account login,
have no rotation API: the request is refused with a 400.
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
