package bloq_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/registry"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// rotatingClient is the driver's client, as the surface uses it for a rotation.
type rotatingClient interface {
	registry.Rotator
	registry.Creator
}

// newDriverSim starts a simulator with one user (me@example.com / pw-0123456789) holding one
// key (cid / csecret), and the driver's client for it; it returns the key's id too.
func newDriverSim(t *testing.T) (*simulator.Server, rotatingClient, string, string) {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	uid := sim.AddBloqUser("me@example.com", "pw-0123456789")
	kid := sim.AddBloqKey(uid, "cid", "csecret")
	api := apiclient.New(apiclient.Options{Provider: bloq.Name, BaseURL: srv.URL + simulator.BloqPrefix})
	return sim, bloq.Driver{}.Client(api, nil).(rotatingClient), uid, kid
}

// A refresh answer that repeats the refresh token it was given issued no new one: Rolled,
// "the new value" of the rolling field, stays empty. One that rotates it sets Rolled.
func TestMintRepeatedRefreshTokenIsNotRolled(t *testing.T) {
	sim, c, _, kid := newDriverSim(t)
	rt := sim.BloqRefreshToken(kid)
	cur := bloq.Credentials{GrantType: bloq.GrantRefreshToken, RefreshToken: rt}
	sim.SetBloqEchoRefresh(true)
	m, err := c.Mint(context.Background(), cur)
	if err != nil || m.Rolled != "" {
		t.Fatalf("echoed refresh token: Rolled set = %v, err = %v", m.Rolled != "", err)
	}
	if _, err := sim.Validate(m.Token.Value); err != nil {
		t.Fatalf("minted token: %v", err)
	}
	sim.SetBloqEchoRefresh(false)
	sim.SetBloqRotateRefresh(true)
	m, err = c.Mint(context.Background(), cur)
	if err != nil || m.Rolled == "" || m.Rolled == rt {
		t.Fatalf("rotated refresh token: Rolled new = %v, err = %v", m.Rolled != "" && m.Rolled != rt, err)
	}
}

// loginFailed checks that err is the account login's own refusal, names no password, and
// that no call after the login was made.
func loginFailed(t *testing.T, sim *simulator.Server, what string, err error, password string) {
	t.Helper()
	var e *apiclient.Error
	if !errors.As(err, &e) || e.Call != "account token" || !apiclient.IsRejected(err) {
		t.Errorf("%s: err = %v, want the account login's 401", what, err)
	} else if strings.Contains(err.Error(), password) {
		t.Errorf("%s: the error names the password: %v", what, err)
	}
	for _, r := range []string{simulator.RouteBloqKeysCreate, simulator.RouteBloqKeysList, simulator.RouteBloqKeysDelete} {
		if n := sim.Calls(r); n != 0 {
			t.Errorf("%s: %d calls to %s after a failed login", what, n, r)
		}
	}
}

// Each rotation step that logs in stops at a failed login (the password was changed in the
// console) and returns that error: it must not go on to call the Accounts service without
// an account token and report that call's refusal instead.
func TestRotationStepsStopAtAFailedLogin(t *testing.T) {
	sim, c, uid, _ := newDriverSim(t)
	const stale = "pw-0123456789"
	sim.SetBloqPassword(uid, "pw-changed-in-console")
	cur := bloq.Credentials{GrantType: bloq.GrantClientCredentials, ClientID: "cid", ClientSecret: "csecret",
		Username: "me@example.com", Password: stale}
	ctx := context.Background()

	next, err := c.Prepare(ctx, cur)
	if next != nil {
		t.Errorf("Prepare returned a credential beside its error: %+v", next)
	}
	loginFailed(t, sim, "Prepare", err, stale)
	ids, err := c.Inventory(ctx, cur)
	if ids != nil {
		t.Errorf("Inventory listed %v beside its error", ids)
	}
	loginFailed(t, sim, "Inventory", err, stale)
	loginFailed(t, sim, "Retire", c.Retire(ctx, cur), stale)
	if got := sim.BloqClientIDs(uid); len(got) != 1 || got[0] != "cid" {
		t.Errorf("live keys after the failed steps: %v", got)
	}
}

// Updating grant_type to "" is omitting it: the grant is inferred again from the fields,
// as on create, not refused as an unknown grant.
func TestValidateEmptyGrantTypeIsInferred(t *testing.T) {
	given := func(f string) bool { return f == "grant_type" }
	for _, tc := range []struct {
		cr   bloq.Credentials
		want string
	}{
		{bloq.Credentials{ClientID: "cid", ClientSecret: "csecret"}, bloq.GrantClientCredentials},
		{bloq.Credentials{Username: "me@example.com", Password: "pw"}, bloq.GrantPassword},
		{bloq.Credentials{RefreshToken: "rt"}, bloq.GrantRefreshToken},
	} {
		got, err := bloq.Driver{}.Validate(tc.cr, false, given)
		if err != nil || got.Field("grant_type") != tc.want {
			t.Errorf("%+v with grant_type \"\": %v, %v; want %s", tc.cr, got, err, tc.want)
		}
	}
	if _, err := (bloq.Driver{}).Validate(bloq.Credentials{ClientID: "cid", ClientSecret: "csecret", GrantType: "implicit"},
		false, given); err == nil {
		t.Error("an unknown grant_type was accepted")
	}
}

// Only client keys minted with (grant client_credentials) rotate, and only with a whole
// account login to create and delete them.
func TestCanRotateNeedsClientKeysGrantAndWholeLogin(t *testing.T) {
	keys := bloq.Credentials{ClientID: "cid", ClientSecret: "csecret", Username: "me@example.com", Password: "pw"}
	if err := (bloq.Driver{}).CanRotate(withGrant(keys, bloq.GrantClientCredentials)); err != nil {
		t.Fatalf("client keys with a login: %v", err)
	}
	for name, cr := range map[string]bloq.Credentials{
		"password grant beside client keys":      withGrant(keys, bloq.GrantPassword),
		"refresh_token grant beside client keys": withGrant(keys, bloq.GrantRefreshToken),
		"client_credentials without a client_id": {GrantType: bloq.GrantClientCredentials, Username: "u", Password: "p"},
		"username without password": {GrantType: bloq.GrantClientCredentials, ClientID: "cid", ClientSecret: "csecret",
			Username: "me@example.com"},
		"password without username": {GrantType: bloq.GrantClientCredentials, ClientID: "cid", ClientSecret: "csecret",
			Password: "pw"},
	} {
		if err := (bloq.Driver{}).CanRotate(cr); err == nil {
			t.Errorf("%s: rotation allowed", name)
		}
	}
}

func withGrant(c bloq.Credentials, grant string) bloq.Credentials {
	c.GrantType = grant
	return c
}
