package apitokens

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

var pathRotateRootHelpDesc = `
Replaces the stored root credential of config/<name> with a new one and returns its
identifier, never its secret.

` + rotationHelps() + `Tokens issued before are dead afterwards (` + tokensDie() + `): revoke the
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
	if field, id := registry.IdentifierField(cfg.cred); field != "" {
		data[field] = id
	}
	if d, ok := registry.Lookup(cfg.Provider); ok {
		if rd, ok := d.(registry.RotatingDriver); ok {
			warnings = append(warnings, fmt.Sprintf("%s; revoke their leases with: vault lease revoke -prefix %screds/%s",
				rd.RotatedWarning(), req.MountPoint, name))
		}
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}
