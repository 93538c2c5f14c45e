package apitokens

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Event types, sent as apitokens/<what>.
const (
	eventConfigWrite  = "config-write"
	eventConfigDelete = "config-delete"
	eventRotate       = "rotate"
)

// event sends the Vault event apitokens/<what> with the config name and provider, and the
// given pairs (trigger, outcome), as metadata: never a secret. A mount without an event
// sender (framework.ErrNoEvents) is not an error; Vault Community Edition sends plugin events
// and drops them. Any other failure is only logged: an event never fails the operation.
func (b *backend) event(ctx context.Context, what, name, provider string, pairs ...string) {
	meta := append([]string{"name", name, "provider", provider}, pairs...)
	if err := logical.SendEvent(ctx, b, "apitokens/"+what, meta...); err != nil && !errors.Is(err, framework.ErrNoEvents) {
		b.Logger().Debug("could not send an event", "type", "apitokens/"+what, "config", name, "error", err)
	}
}
