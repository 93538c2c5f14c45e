package bloq_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/apiclient"
	"github.com/apitokens/vault-plugin-secrets-apitokens/backend/bloq"
	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// newSim starts a simulator with one user (me@example.com / pw) holding one key (cid /
// csecret), and a client for it.
func newSim(t *testing.T) (*simulator.Server, *bloq.Client, string) {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	uid := sim.AddBloqUser("me@example.com", "pw")
	sim.AddBloqKey(uid, "cid", "csecret")
	return sim, bloq.New(apiclient.New(apiclient.Options{Provider: "bloq", BaseURL: srv.URL + simulator.BloqPrefix}), nil), uid
}

// loginCalls returns how many requests POST /auth and POST /auth/login have received.
func loginCalls(sim *simulator.Server) [2]int {
	return [2]int{sim.Calls(simulator.RouteBloqAuth), sim.Calls(simulator.RouteBloqAuthLogin)}
}

func login(t *testing.T, sim *simulator.Server, c *bloq.Client, want [2]int) {
	t.Helper()
	tr, err := c.AccountToken(context.Background(), "me@example.com", "pw")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := sim.Validate(tr.Token.Value); err != nil {
		t.Fatalf("account token: %v", err)
	}
	if got := loginCalls(sim); got != want {
		t.Fatalf("calls to /auth and /auth/login = %v, want %v", got, want)
	}
}

func TestAccountLoginCurrentPath(t *testing.T) {
	sim, c, _ := newSim(t)
	login(t, sim, c, [2]int{1, 0})
	login(t, sim, c, [2]int{2, 0})
}

func TestAccountLoginLegacyFallbackRemembered(t *testing.T) {
	sim, c, _ := newSim(t)
	sim.SetBloqLegacyLogin(true)
	login(t, sim, c, [2]int{1, 1})
	login(t, sim, c, [2]int{1, 2}) // straight to /auth/login
	// The deployment moves back to the current page's path: it is learned again.
	sim.SetBloqLegacyLogin(false)
	sim.Inject(simulator.RouteBloqAuthLogin, simulator.Fault{Status: 404})
	login(t, sim, c, [2]int{2, 3})
	login(t, sim, c, [2]int{3, 3}) // straight to /auth
}

func TestAccountLoginFallbackOn405(t *testing.T) {
	sim, c, _ := newSim(t)
	sim.Inject(simulator.RouteBloqAuth, simulator.Fault{Status: 405})
	login(t, sim, c, [2]int{1, 1})
	login(t, sim, c, [2]int{1, 2})
}

func TestAccountLoginRejectionIsFinal(t *testing.T) {
	sim, c, _ := newSim(t)
	_, err := c.AccountToken(context.Background(), "me@example.com", "wrong")
	if apiclient.StatusOf(err) != 401 || !apiclient.IsRejected(err) {
		t.Fatalf("wrong password: %v", err)
	}
	if got := loginCalls(sim); got != [2]int{1, 0} {
		t.Fatalf("calls to /auth and /auth/login = %v, want [1 0]: a 401 must not fall back", got)
	}
}

func TestRefreshSentOnce(t *testing.T) {
	sim, c, _ := newSim(t)
	ct, err := c.ClientToken(context.Background(), "cid", "csecret")
	if err != nil {
		t.Fatal(err)
	}
	before := sim.Calls(simulator.RouteBloqToken)
	sim.Inject(simulator.RouteBloqToken, simulator.Fault{Status: 503})
	_, err = c.Refresh(context.Background(), ct.RefreshToken)
	if apiclient.StatusOf(err) != 503 || sim.Calls(simulator.RouteBloqToken)-before != 1 {
		t.Fatalf("refresh: err=%v, calls=%d, want one call answered 503", err, sim.Calls(simulator.RouteBloqToken)-before)
	}
}

func TestDeleteViaIDOnlyList(t *testing.T) {
	sim, c, uid := newSim(t)
	sim.SetBloqKeyListIDOnly(true)
	ctx := context.Background()
	acct, err := c.AccountToken(ctx, "me@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	nk, err := c.CreateClientKey(ctx, acct.Token.Value)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.ListClientKeys(ctx, acct.Token.Value)
	if err != nil || len(keys) != 2 || keys[0].ClientID != "" {
		t.Fatalf("id-only list: %+v %v", keys, err)
	}
	id := bloq.KeyIDFor(keys, "cid")
	if id != "cid" {
		t.Fatalf("KeyIDFor = %q, want the clientId the list gives as id", id)
	}
	if err := c.DeleteClientKey(ctx, acct.Token.Value, id); err != nil {
		t.Fatal(err)
	}
	if got := sim.BloqClientIDs(uid); len(got) != 1 || got[0] != nk.ClientID {
		t.Fatalf("live keys after delete: %v", got)
	}
	if _, err := c.ClientToken(ctx, "cid", "csecret"); apiclient.StatusOf(err) != 401 {
		t.Errorf("deleted key still mints: %v", err)
	}
}

// A key list that gives a dot segment as a key's id ("." or "..") gets no DELETE: the path
// would resolve to /users/me/client-keys or /users/me.
func TestDeleteRefusesDotSegmentIDs(t *testing.T) {
	sim, c, uid := newSim(t)
	ctx := context.Background()
	acct, err := c.AccountToken(ctx, "me@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"..", ".", ""} {
		sim.Inject(simulator.RouteBloqKeysList, simulator.Fault{Status: 200, Body: `[{"id":"` + id + `","clientId":"cid"}]`})
		keys, err := c.ListClientKeys(ctx, acct.Token.Value)
		if err != nil {
			t.Fatal(err)
		}
		got := bloq.KeyIDFor(keys, "cid")
		err = c.DeleteClientKey(ctx, acct.Token.Value, got)
		if err == nil || !strings.Contains(err.Error(), "bloq: delete client key") || sim.Calls(simulator.RouteBloqKeysDelete) != 0 {
			t.Fatalf("id %q: err=%v, delete calls=%d", id, err, sim.Calls(simulator.RouteBloqKeysDelete))
		}
	}
	if got := sim.BloqClientIDs(uid); len(got) != 1 {
		t.Fatalf("keys: %v", got)
	}
}
