package registry_test

import (
	"encoding/json"
	"reflect"
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

// Each driver's declared fields are its credential's: each round-trips through With and
// Field, encodes under its name (and nothing else), and decodes back; a name it does not
// declare reads as nil.
func TestDriverConformance(t *testing.T) {
	for _, d := range registry.Drivers() {
		c, _ := d.DecodeCredential([]byte("{}"))
		want := map[string]any{}
		for _, f := range d.Fields() {
			v := f.Name + "-value"
			if f.Type == registry.Enum {
				v = f.Allowed[len(f.Allowed)-1]
			}
			c = c.With(f.Name, v)
			if got := c.Field(f.Name); got != v {
				t.Errorf("%s.%s: With then Field = %v", d.Name(), f.Name, got)
			}
			want[f.Name] = v
		}
		raw, err := json.Marshal(c)
		var got map[string]any
		if err != nil || json.Unmarshal(raw, &got) != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s encodes as %s, want the keys of its fields %v", d.Name(), raw, want)
		}
		back, err := d.DecodeCredential(raw)
		if err != nil || !reflect.DeepEqual(back, c) || back.Provider() != d.Name() {
			t.Errorf("%s decodes back as %+v, %v", d.Name(), back, err)
		}
		if c.Field("no_such_field") != nil {
			t.Errorf("%s reads an undeclared field", d.Name())
		}
	}
}

// SameRoot compares the whole pair, the secret half too; for a provider that declares no
// Root field the whole credential is the pair, and AdoptRoot takes all of it.
func TestSameRootComparesTheWholePair(t *testing.T) {
	ob := offblocks.Credentials{APIKey: "k", APISecret: "s"}
	bq := bloq.Credentials{ClientID: "c", ClientSecret: "s", Username: "u", GrantType: bloq.GrantClientCredentials}
	if registry.SameRoot(ob, ob.With("api_secret", "other")) || registry.SameRoot(bq, bq.With("client_secret", "other")) {
		t.Fatal("a pair with another secret is the same pair")
	}
	ops := opsnow.Credentials{APIKey: "a"}
	if registry.SameRoot(ops, opsnow.Credentials{APIKey: "b"}) || !registry.SameRoot(ops, ops) {
		t.Fatal("OpsNow's key is its pair")
	}
	if got := registry.AdoptRoot(ops, opsnow.Credentials{APIKey: "b"}).(opsnow.Credentials); got.APIKey != "b" {
		t.Fatalf("AdoptRoot = %+v", got)
	}
}

// Which grant renews a field on use, and which token kind each grant mints.
func TestBloqGrants(t *testing.T) {
	d := bloq.Driver{}
	for grant, rolls := range map[string]bool{bloq.GrantRefreshToken: true, bloq.GrantClientCredentials: false, bloq.GrantPassword: false} {
		c := bloq.Credentials{GrantType: grant}
		if d.Rolls(c) != rolls {
			t.Errorf("Rolls(%s) = %v", grant, !rolls)
		}
		want := bloq.ClientTokenLifetime
		if grant == bloq.GrantPassword {
			want = bloq.AccountTokenLifetime
		}
		if k := d.Kind(c); k.Lifetime != want {
			t.Errorf("Kind(%s) = %+v", grant, k)
		}
	}
}
