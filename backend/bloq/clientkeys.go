package bloq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
)

// ClientKey is a client key pair; Secret is only known right after creation.
type ClientKey struct {
	// ID identifies the key in /users/me/client-keys/{id}; empty when a response lacks it.
	// In a list that gives no clientId, ID is the key's clientId.
	ID       string
	ClientID string
	Secret   string
}

type rawKey struct {
	ID           json.RawMessage `json:"id"`
	ClientID     string          `json:"clientId"`
	ClientSecret string          `json:"clientSecret"`
}

func (k rawKey) key() ClientKey {
	return ClientKey{ID: idString(k.ID), ClientID: k.ClientID, Secret: k.ClientSecret}
}

// idString accepts an id given as a string or a number.
func idString(raw json.RawMessage) string {
	if s, ok := apiclient.String(raw); ok {
		return s
	}
	if f, ok := apiclient.Number(raw); ok && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return ""
}

// unwrapData returns the "data" member of an object, or the body itself.
func unwrapData(body []byte) json.RawMessage {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Data) > 0 && string(env.Data) != "null" {
		return env.Data
	}
	return body
}

// ParseCreatedKey decodes a POST /users/me/client-keys response: {clientId, clientSecret}
// (an id too, if present), at the top level or under "data".
func ParseCreatedKey(body []byte) (ClientKey, error) {
	var k rawKey
	if json.Unmarshal(unwrapData(body), &k) != nil {
		return ClientKey{}, apiclient.ErrNotJSON
	}
	if k.ClientID == "" || k.ClientSecret == "" {
		return ClientKey{}, errors.New("no clientId or clientSecret")
	}
	return k.key(), nil
}

// ParseKeyList decodes GET /users/me/client-keys: an array of keys, or an object holding
// one (under "data" or any single array member of keys; members that are not arrays of
// objects, such as a null page token or a list of scopes, are not the list).
func ParseKeyList(body []byte) ([]ClientKey, error) {
	body = bytes.TrimSpace(unwrapData(body))
	var raw []rawKey
	if err := json.Unmarshal(body, &raw); err != nil {
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			return nil, apiclient.ErrNotJSON
		}
		found := false
		for _, v := range obj {
			// Only an array is a list: a null member (a last page's "nextPageToken": null)
			// decodes into a slice too, as an empty list. Each member decodes into a slice of
			// its own, so one that fails partway leaves nothing behind.
			var r []rawKey
			if v = bytes.TrimSpace(v); len(v) > 0 && v[0] == '[' && json.Unmarshal(v, &r) == nil {
				raw, found = r, true
				break
			}
		}
		if !found {
			return nil, errors.New("no list of client keys")
		}
	}
	keys := make([]ClientKey, 0, len(raw))
	for _, k := range raw {
		keys = append(keys, k.key())
	}
	return keys, nil
}

// CreateClientKey creates a new key pair with an account token. It is sent once, never
// retried: a retry after a lost response would create a second key.
func (c *Client) CreateClientKey(ctx context.Context, accountToken string) (ClientKey, error) {
	return apiclient.Call(ctx, c.api, apiclient.Request{Call: "create client key", Method: http.MethodPost,
		Path: "/users/me/client-keys", Bearer: accountToken, NoRetry: true,
		Secrets: []string{accountToken}}, ParseCreatedKey)
}

// ListClientKeys lists the account's keys (without secrets).
func (c *Client) ListClientKeys(ctx context.Context, accountToken string) ([]ClientKey, error) {
	return apiclient.Call(ctx, c.api, apiclient.Request{Call: "list client keys", Method: http.MethodGet,
		Path: "/users/me/client-keys", Bearer: accountToken, Secrets: []string{accountToken}}, ParseKeyList)
}

// DeleteClientKey deletes the key with the given id. A 404 counts as done. An id that is
// empty or a dot segment ("." or "..", which a server resolves to another path: DELETE
// /users/me/client-keys/.. is DELETE /users/me) is refused without a call.
func (c *Client) DeleteClientKey(ctx context.Context, accountToken, id string) error {
	if id == "" || id == "." || id == ".." {
		return &apiclient.Error{Provider: Name, Call: "delete client key", Method: http.MethodDelete,
			Path: "/users/me/client-keys/{id}", Err: fmt.Errorf("refused: the provider's key list gives the id %q, "+
				"which is no key id (it would address another path)", id)}
	}
	_, err := c.api.Do(ctx, apiclient.Request{Call: "delete client key", Method: http.MethodDelete,
		Path: "/users/me/client-keys/" + url.PathEscape(id), Bearer: accountToken,
		Secrets: []string{accountToken}, Identifiers: []string{id}})
	if apiclient.StatusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// KeyIDFor returns the id to delete the listed key of clientID with, or "" (always "" for
// an empty clientID). An entry matches by its clientId; an entry that carries no clientId
// (Bloq's newest CLI lists only {id, createdAt}, where id identifies the key) matches when
// its id equals clientID.
func KeyIDFor(keys []ClientKey, clientID string) string {
	if clientID == "" {
		return ""
	}
	for _, k := range keys {
		if k.ClientID == clientID || (k.ClientID == "" && k.ID == clientID) {
			return k.ID
		}
	}
	return ""
}
