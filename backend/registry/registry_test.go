package registry_test

import (
	"strings"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/offblocks"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/opsnow"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
)

// Each provider package registers itself once; the registry lists them by Order, and a second
// driver of one name is a build mistake that panics.
func TestRegistry(t *testing.T) {
	if got := strings.Join(registry.Names(), ","); got != "offblocks,bloq,opsnow" {
		t.Fatalf("Names = %s", got)
	}
	for _, n := range []string{"offblocks", "bloq", "opsnow"} {
		if d, ok := registry.Lookup(n); !ok || d.Name() != n {
			t.Fatalf("Lookup(%s) = %v, %v", n, d, ok)
		}
	}
	if _, ok := registry.Lookup("oauth2"); ok {
		t.Fatal("an unregistered provider was found")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a second offblocks driver registered")
			}
		}()
		registry.Register(offblocks.Driver{})
	}()
	// Every driver's credential decodes from {} and names its own provider.
	for _, d := range registry.Drivers() {
		c, err := d.DecodeCredential([]byte("{}"))
		if err != nil || c.Provider() != d.Name() {
			t.Fatalf("%s: %v, %v", d.Name(), c, err)
		}
	}
}

// The surface's operations on any credential, by its driver's fields: the identifier is the
// first Root Identifier field; account names are every Identifier field set; SameRoot compares
// Root fields only (nil only to nil); AdoptRoot takes them; WithAccount takes the others.
func TestCredentialHelpers(t *testing.T) {
	cur := bloq.Credentials{ClientID: "c1", ClientSecret: "s1", Username: "u1", Password: "p1", GrantType: bloq.GrantClientCredentials}
	next := bloq.Credentials{ClientID: "c2", ClientSecret: "s2", Username: "old-u", Password: "old-p", GrantType: bloq.GrantClientCredentials}
	if n, v := registry.IdentifierField(cur); n != "client_id" || v != "c1" || registry.Identifier(offblocks.Credentials{APIKey: "k"}) != "k" {
		t.Fatalf("IdentifierField = %s %s", n, v)
	}
	if registry.Identifier(opsnow.Credentials{APIKey: "secret"}) != "" || registry.Identifier(nil) != "" {
		t.Fatal("a credential without an identifier field named one")
	}
	if got := strings.Join(registry.AccountNames(cur), ","); got != "c1,u1" {
		t.Fatalf("AccountNames = %s", got)
	}
	if registry.SameRoot(cur, next) || !registry.SameRoot(cur, cur.With("username", "other")) ||
		registry.SameRoot(cur, nil) || registry.SameRoot(nil, cur) || !registry.SameRoot(nil, nil) {
		t.Fatal("SameRoot")
	}
	adopted := registry.AdoptRoot(cur, next).(bloq.Credentials)
	if adopted.ClientID != "c2" || adopted.ClientSecret != "s2" || adopted.Username != "u1" || adopted.Password != "p1" {
		t.Fatalf("AdoptRoot = %+v", adopted)
	}
	retiring := registry.WithAccount(next, cur).(bloq.Credentials)
	if retiring.ClientID != "c2" || retiring.Username != "u1" || retiring.Password != "p1" {
		t.Fatalf("WithAccount = %+v", retiring)
	}
	if cur.ClientID != "c1" || next.Username != "old-u" {
		t.Fatal("a helper changed a credential in place")
	}
	if m, err := registry.Members(offblocks.Credentials{APIKey: "k", APISecret: "s"}); err != nil ||
		string(m) != `"api_key":"k","api_secret":"s"` {
		t.Fatalf("Members = %s, %v", m, err)
	}
	if m, _ := registry.Members(nil); len(m) != 0 {
		t.Fatalf("Members(nil) = %s", m)
	}
}
