package apitokens

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

var pathRotateRootHelpDesc = `
Replaces the stored root credential of config/<name> with a new one and returns its
identifier, never its secret.

Immediate (vault write -f <mount>/rotate-root/<name>): the rotation runs now, as a leaked
credential needs. Tokens issued before are dead afterwards (` + tokensDie() + `), but their
leases run on: consumers may hold a dead token until the end of the longest lease handed out,
which the answer names. Revoking those leases does not make Vault Agent or Vault Secrets
Operator fetch again (they fetch a non-renewable secret again only near its lease's end).

Planned (vault write <mount>/rotate-root/<name> planned=true), for routine rotations: no
consumer holds a dead token. The answer's rotates_at is the earliest moment when every lease
already handed out of the current credential has ended; every lease handed out from then on
ends by it, and the rotation runs then (the first creds read after it, or Vault's periodic
function within a minute), surviving restarts and leader changes. A config read shows it as
planned_rotation, and next_vault_rotation is the earlier of it and the schedule. A second
planned=true answers the plan already made; an immediate rotation, any other rotation, a
write of the root credential and a delete of the config drop it; vault delete
<mount>/rotate-root/<name> cancels it.

` + rotationHelps() + `A credential sent to the provider whose refusal was not conclusive is never discarded: it
stays a fallback until it, or another credential, is seen working, or an operator writes a
credential with force=true or deletes the config with force=true. While a fallback is held
the rotation is unsettled: creds reads hand out no token of the old credential (it may die at
any moment) and settle it first, as Vault's periodic function does every minute; the
rotation that left it so fails with a 502 that says so, and a new one (or a plan) is refused
with a 400.

These configs cannot rotate, and the request is refused with a 400: ` + cannotRotate + `.
`

func pathRotateRoot(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "rotate-root/" + framework.GenericNameRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationVerb: "rotate", OperationSuffix: "root"},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Required: true,
				Description: "Name of the provider account (config/<name>)."},
			"planned": {Type: framework.TypeBool, Default: false,
				Description: "true: rotate once every lease already handed out has ended (rotates_at), capping new " +
					"leases at that moment, so that no consumer holds a dead token; false: rotate now."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathRotateRoot,
				Summary:  "Rotate the account's root credential now, or plan its rotation (planned=true).",
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields: map[string]*framework.FieldSchema{
						"rotates_at": {Type: framework.TypeString, Description: "planned=true: when the rotation " +
							"runs (RFC 3339), once every lease already handed out of the current credential has ended."},
						"last_rotated": {Type: framework.TypeString, Description: "Immediate: when the credential was " +
							"rotated (RFC 3339)."},
						"leases_end_by": {Type: framework.TypeString, Description: "Immediate: until when, at most, " +
							"consumers may hold a token the rotation killed: the end of the longest lease handed out (RFC 3339)."},
					},
				}}},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback: b.pathRotateRootCancel,
				Summary:  "Cancel the account's planned rotation.",
				DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "apitokens", OperationVerb: "cancel",
					OperationSuffix: "planned-rotation"},
			},
		},
		HelpSynopsis:    "Rotate a provider account's root credential, now or once its leases have ended.",
		HelpDescription: pathRotateRootHelpDesc,
	}
}

func (b *backend) pathRotateRoot(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if d.Get("planned").(bool) {
		return b.pathRotateRootPlanned(ctx, req, name)
	}
	cfg, warnings, leasesEnd, err := b.rotateNow(ctx, req.Storage, name)
	if err != nil {
		return errorResponse(err)
	}
	data := map[string]any{"last_rotated": cfg.LastRotated.UTC().Format(time.RFC3339)}
	if field, id := registry.IdentifierField(cfg.cred); field != "" {
		data[field] = id
	}
	if d, ok := registry.Lookup(cfg.Provider); ok {
		if rd, ok := d.(registry.RotatingDriver); ok && leasesEnd.After(cfg.LastRotated) {
			data["leases_end_by"] = leasesEnd.Format(time.RFC3339)
			warnings = append(warnings, fmt.Sprintf("%s; consumers may hold such a dead token until %s at most (the "+
				"end of the longest lease handed out): a lease revoke does not make Vault Agent or Vault Secrets "+
				"Operator fetch again. For routine rotations use: vault write %srotate-root/%s planned=true",
				rd.RotatedWarning(), leasesEnd.Format(time.RFC3339), req.MountPoint, name))
		}
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}

// rotateNow is rotate with the manual trigger, returning as well until when at most the
// leases of the credential it replaced run (leasesEndBy, read under the same lock, before).
func (b *backend) rotateNow(ctx context.Context, s logical.Storage, name string) (*accountConfig, []string, time.Time, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()
	var leasesEnd time.Time
	if cfg, err := getConfig(ctx, s, name); err == nil && cfg != nil {
		leasesEnd = b.leasesEndBy(name, cfg, b.now())
	}
	cfg, warnings, err := b.rotateLocked(ctx, s, name, triggerManual)
	return cfg, warnings, leasesEnd, err
}

func (b *backend) pathRotateRootPlanned(ctx context.Context, req *logical.Request, name string) (*logical.Response, error) {
	p, made, warnings, err := b.planRotation(ctx, req.Storage, name)
	if err != nil {
		return errorResponse(err)
	}
	if !made {
		warnings = append(warnings, fmt.Sprintf("a rotation was planned already, at %s; cancel it with: vault delete "+
			"%srotate-root/%s", p.Made.UTC().Format(time.RFC3339), req.MountPoint, name))
	}
	return &logical.Response{Data: map[string]any{"rotates_at": p.At.UTC().Format(time.RFC3339)}, Warnings: warnings}, nil
}

func (b *backend) pathRotateRootCancel(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	p, err := b.cancelPlan(ctx, req.Storage, name)
	switch {
	case err != nil:
		return errorResponse(err)
	case p.At.IsZero():
		return &logical.Response{Warnings: []string{fmt.Sprintf("config %q has no planned rotation", name)}}, nil
	}
	return nil, nil
}
