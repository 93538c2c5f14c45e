package apitokens

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// A full run of every path, error and rotation at trace level: no credential and no token
// may appear in the log, in a config read, or in an error.
func TestNoSecretInLogsReadsOrErrors(t *testing.T) {
	h := newHarness(t)
	refresh := h.sim.BloqRefreshToken(h.bqKeyID)
	secrets := []string{obSecret, bqSecret, bqPass, opsAPIKey, refresh}
	var surfaced strings.Builder // every read response and error text

	record := func(resp *logical.Response, err error) {
		if err != nil {
			fmt.Fprintln(&surfaced, err.Error())
		}
		if resp != nil {
			fmt.Fprintln(&surfaced, resp.Data, resp.Warnings)
		}
	}
	h.mustDo(logical.CreateOperation, "config/ob", h.offblocksConfig())
	h.mustDo(logical.CreateOperation, "config/bq", h.bloqConfig(nil))
	h.mustDo(logical.CreateOperation, "config/bq-rt", map[string]any{"provider": "bloq",
		"base_url": h.url + simulator.BloqPrefix, "refresh_token": refresh})
	h.mustDo(logical.CreateOperation, "config/ops", h.opsnowConfig())

	var tokens []string
	for _, name := range []string{"ob", "bq", "bq-rt", "ops"} {
		tokens = append(tokens, h.creds(name).Data["token"].(string))
		record(h.do(logical.ReadOperation, "config/"+name, nil))
	}
	// Errors: bad credentials echoed back by a provider, faults, refused rotations.
	wrong := "feedfacefeedfacefeedfacefeedfacefeedface"
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_secret": wrong})
	record(h.do(logical.ReadOperation, "creds/ob", nil))
	h.mustDo(logical.UpdateOperation, "config/ob", map[string]any{"api_secret": obSecret})
	h.sim.Inject(simulator.RouteOpsNowToken, simulator.Fault{Status: 401,
		Body: `{"status":"fail","error":{"code":401,"message":"bad key ` + opsAPIKey + `"}}`})
	record(h.do(logical.ReadOperation, "creds/ops", nil))
	h.sim.Inject(simulator.RouteBloqToken, simulator.Fault{Status: 400, Body: "echo " + bqSecret})
	record(h.do(logical.ReadOperation, "creds/bq", nil))
	record(h.do(logical.UpdateOperation, "rotate-root/ops", nil))
	secrets = append(secrets, wrong)

	// Rotations, one of them interrupted and recovered.
	h.sim.Inject(simulator.RouteOffBlocksCredentials, simulator.Fault{AfterApply: true, Status: 500})
	record(h.do(logical.UpdateOperation, "rotate-root/ob", nil))
	record(h.do(logical.UpdateOperation, "rotate-root/ob", nil))
	record(h.do(logical.UpdateOperation, "rotate-root/bq", nil))
	newOB, newBQ := h.stored("ob"), h.stored("bq")
	secrets = append(secrets, newOB.ob().APISecret, newBQ.bq().ClientSecret)
	for _, name := range []string{"ob", "bq"} {
		tokens = append(tokens, h.creds(name).Data["token"].(string))
		record(h.do(logical.ReadOperation, "config/"+name, nil))
	}
	h.rollback()

	logs := h.logs.String()
	if !strings.Contains(logs, "rotated root credential") || !strings.Contains(logs, "issued token") {
		t.Fatalf("the log capture saw nothing of the run:\n%s", logs)
	}
	assertNoSecrets(t, "log", logs, append(secrets, tokens...)...)
	assertNoSecrets(t, "responses and errors", surfaced.String(), secrets...)
	if !strings.Contains(surfaced.String(), "status 401") {
		t.Fatalf("the errors were not recorded:\n%s", surfaced.String())
	}
}
