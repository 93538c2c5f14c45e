package apitokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
)

const pathRotateRootHelpDesc = `
Replaces the stored root credential of config/<name> with a new one and returns its
identifier, never its secret.

OffBlocks: a new apiKey (UUID v4) and apiSecret (40 hex characters) are generated, set with
PUT /auth/credentials, confirmed by minting a token, and stored. Every token issued before is
dead afterwards (the provider's rule): revoke the old leases with
'vault lease revoke -prefix <mount>/creds/<name>'.

Bloq (client keys plus an account login): a new client key is created, confirmed, stored,
and the old key deleted; a failed delete is a warning.

The new credential is written to a seal-wrapped WAL entry before the provider's side
changes; an interrupted rotation is finished or undone by asking the provider which
credential works, on the next creds read or by Vault's rollback. OpsNow, and Bloq without an
account login, have no rotation API: the request is refused with a 400.
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
	cfg, warnings, err := b.rotate(ctx, req.Storage, name)
	if err != nil {
		var bad *rotationRefused
		switch {
		case errors.As(err, &bad):
			return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
		case errors.As(err, new(errConfigNotFound)):
			return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
		case errors.As(err, new(*apiclient.Error)):
			return nil, logical.CodedError(http.StatusBadGateway, err.Error())
		}
		return nil, err
	}
	data := map[string]any{"last_rotated": cfg.LastRotated.UTC().Format(time.RFC3339)}
	switch cfg.Provider {
	case offblocks.Name:
		data["api_key"] = cfg.APIKey
		warnings = append(warnings, fmt.Sprintf("tokens issued before this rotation no longer work; "+
			"revoke their leases with: vault lease revoke -prefix %screds/%s", req.MountPoint, name))
	case bloq.Name:
		data["client_id"] = cfg.ClientID
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}

// rotationRefused is a 400: this account cannot be rotated.
type rotationRefused struct{ why string }

func (e *rotationRefused) Error() string { return e.why }

// rotate replaces config name's root credential under its exclusive lock:
//
//  1. settle any earlier interrupted rotation (refuse to stack a new one on it);
//  2. Prepare the next credential (OffBlocks: generated here; Bloq: created upstream);
//  3. write both credentials to a WAL entry: from here on nothing can be lost;
//  4. Activate it upstream (OffBlocks PUT, after which the old pair is dead);
//  5. confirm it by minting a token;
//  6. store it in config/<name>;
//  7. Retire the old one upstream (Bloq DELETE; a failure is a warning), delete the WAL.
//
// If step 4 or 5 fails, the provider is asked which credential works and that one is kept;
// if it cannot tell (unreachable), the WAL entry stays for the creds path and the rollback.
func (b *backend) rotate(ctx context.Context, s logical.Storage, name string) (*accountConfig, []string, error) {
	lock := b.lock(name)
	lock.Lock()
	defer lock.Unlock()

	if _, err := b.settlePendingLocked(ctx, s, name); err != nil {
		return nil, nil, fmt.Errorf("an earlier rotation of %q is unresolved, try again later: %w", name, err)
	}
	cfg, err := getConfig(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if cfg == nil {
		return nil, nil, errConfigNotFound(name)
	}
	p, ok := b.providerFor(name, cfg).(rotator)
	if !ok {
		return nil, nil, &rotationRefused{fmt.Sprintf("provider %s has no rotation API: issue a new key in its console and write it to config/%s", cfg.Provider, name)}
	}
	if err := p.CanRotate(cfg.credential); err != nil {
		return nil, nil, &rotationRefused{err.Error()}
	}

	cur := cfg.credential
	next, err := p.Prepare(ctx, cur)
	if err != nil {
		return nil, nil, err
	}
	entry, err := newRotationWAL(name, cfg.Provider, cur, next)
	if err != nil {
		return nil, nil, err
	}
	walID, err := framework.PutWAL(ctx, s, walKindRotation, entry)
	if err != nil {
		b.retire(ctx, p, name, next) // nothing changed upstream but a new Bloq key
		return nil, nil, fmt.Errorf("write rotation WAL: %w", err)
	}

	stepErr := p.Activate(ctx, cur, next)
	if errors.Is(stepErr, errUnchanged) {
		if err := framework.DeleteWAL(ctx, s, walID); err != nil {
			b.Logger().Warn("could not delete an abandoned WAL entry; the rollback will settle it", "config", name, "error", err)
		}
		return nil, nil, fmt.Errorf("rotation failed: %w", stepErr)
	}
	if stepErr == nil {
		_, stepErr = p.Mint(ctx, next)
	}
	if stepErr != nil {
		if err := b.recoverRotation(ctx, s, walID, entry, stepErr); err != nil {
			return nil, nil, err
		}
		cfg, err := getConfig(ctx, s, name)
		if err != nil {
			return nil, nil, fmt.Errorf("reload rotated config: %w", err)
		}
		if cfg == nil {
			return nil, nil, errConfigNotFound(name)
		}
		return cfg, []string{"the provider's answer was lost, but the new credential was confirmed and stored"}, nil
	}

	cfg.credential.adoptRoot(next)
	cfg.LastRotated = b.now().UTC()
	if err := b.putConfig(ctx, s, name, cfg); err != nil {
		// The WAL entry holds the new credential: the creds path or the rollback stores it.
		return nil, nil, fmt.Errorf("store rotated credential (kept in the WAL, recovered on the next read): %w", err)
	}
	crashpoint("after-config-write")
	var warnings []string
	if err := p.Retire(ctx, cur); err != nil {
		b.Logger().Warn("could not remove the replaced credential upstream", "config", name, "error", err)
		warnings = append(warnings, fmt.Sprintf("the new credential is stored, but the old one could not be removed upstream: %v", err))
	}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		b.Logger().Warn("rotation done but its WAL entry remains; the rollback will clear it", "config", name, "error", err)
	}
	b.Logger().Info("rotated root credential", "config", name, "provider", cfg.Provider)
	return cfg, warnings, nil
}

// recoverRotation settles a rotation whose activation or confirmation failed. It returns nil
// only when the new credential is confirmed and stored.
func (b *backend) recoverRotation(ctx context.Context, s logical.Storage, walID string, e rotationWAL, stepErr error) error {
	out, err := b.settle(ctx, s, e)
	switch out {
	case keptOld, dropped:
		if err := framework.DeleteWAL(ctx, s, walID); err != nil {
			b.Logger().Warn("could not delete a settled WAL entry", "config", e.Name, "error", err)
		}
		return fmt.Errorf("rotation failed, the stored credential still works: %w", stepErr)
	case adoptedNew:
		if err := framework.DeleteWAL(ctx, s, walID); err != nil {
			b.Logger().Warn("could not delete a settled WAL entry", "config", e.Name, "error", err)
		}
		b.Logger().Warn("rotation step failed but the new credential works; stored", "config", e.Name, "error", stepErr)
		return nil
	}
	b.Logger().Error("rotation outcome unknown; the new credential is kept in a WAL entry", "config", e.Name, "error", err)
	return fmt.Errorf("rotation outcome unknown (kept in a WAL entry and settled on the next creds read or rollback): %w", stepErr)
}
