package apitokens

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// errConfigNotFound is a 400 naming the missing config.
type errConfigNotFound string

func (e errConfigNotFound) Error() string { return fmt.Sprintf("no config named %q", string(e)) }

// unknownProviderError is a stored config whose provider this version of the plugin does
// not know: a newer version wrote it. It fails closed: nothing is sent anywhere for it, and
// it is neither settled, rotated nor written; an upgrade serves it again.
// With inWAL, it is an interrupted rotation's WAL entry of the config that has such a provider:
// it may hold a credential, and only force=true (on a delete or a credential write) gives it up.
type unknownProviderError struct {
	name, provider string
	inWAL          bool
}

func (e *unknownProviderError) Error() string {
	if e.inWAL {
		return fmt.Sprintf("config %q has an interrupted rotation's entry of provider %q, which this version of the "+
			"plugin (%s) does not know: it was written by a newer version of the plugin and may hold a credential; "+
			"upgrade, or give it up with force=true", e.name, e.provider, Version)
	}
	return fmt.Sprintf("config %q has provider %q, which this version of the plugin (%s) does not know: it was "+
		"written by a newer version of the plugin; upgrade, or delete it with force=true", e.name, e.provider, Version)
}

// errorResponse maps every handler error to what Vault answers, in one place:
//   - storage that cannot be written here: logical.ErrReadOnly itself, so that Vault
//     forwards the request to the node that can write;
//   - bad input, a missing config, a refused rotation, an unsettled rotation blocking the
//     operation because of the provider: 400 with the message (which names the field or
//     the config); blocking it because of Vault's own storage: 500;
//   - a rotation left unsettled by the provider, or any provider failure: 502 whose text
//     names the provider, the call and the status;
//   - a config of a provider this version does not know: 501 Not Implemented (clients do
//     not retry it: only an upgrade or a forced delete ends it);
//   - anything else (storage, or an error already carrying an HTTP code): as it is.
func errorResponse(err error) (*logical.Response, error) {
	return errorResponseText(err, err.Error())
}

// errorResponseText is errorResponse with text, err's text as its reader may see it
// (readerText), in place of err's own.
func errorResponseText(err error, text string) (*logical.Response, error) {
	var (
		field     *fieldError
		notFound  errConfigNotFound
		refused   *rotationRefused
		pending   *pendingRotationError
		unsettled *unsettledError
		provider  *apiclient.Error
		unknown   *unknownProviderError
	)
	switch {
	case readOnlyAware(err) == logical.ErrReadOnly:
		return nil, logical.ErrReadOnly
	case errors.As(err, &unknown):
		return nil, logical.CodedError(http.StatusNotImplemented, text)
	case errors.As(err, &pending) && !errors.As(pending.cause, &provider) && !errors.As(pending.cause, &unsettled):
		return nil, withText(err, text) // the rotation could not be settled for a reason of Vault's own (storage)
	case errors.As(err, &field), errors.As(err, &notFound), errors.As(err, &refused), errors.As(err, &pending):
		return logical.ErrorResponse(text), logical.ErrInvalidRequest
	case errors.As(err, &unsettled), errors.As(err, &provider):
		return nil, logical.CodedError(http.StatusBadGateway, text)
	}
	return nil, withText(err, text)
}

// withText is err, or when text differs from its text, an error of that text wrapping it.
func withText(err error, text string) error {
	if text == err.Error() {
		return err
	}
	return &textError{text: text, err: err}
}

// textError is an error shown with another text than the one it wraps (readerText).
type textError struct {
	text string
	err  error
}

func (e *textError) Error() string { return e.text }
func (e *textError) Unwrap() error { return e.err }

// failedOnProvider reports whether err is the provider's doing: an answer or a failure to
// answer of its API, or a rotation it left unsettled (a creds read that fails so counts
// toward apitokens_mint_failing_since_timestamp_seconds). A call its caller gave up on
// (context canceled: a client that timed out or went away) is not.
func failedOnProvider(err error) bool {
	var (
		unsettled *unsettledError
		provider  *apiclient.Error
	)
	return (errors.As(err, &unsettled) || errors.As(err, &provider)) && !errors.Is(err, context.Canceled)
}
