package apitokens

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

// Each provider fault ends within request_timeout (plus generous slack) with an error that
// names provider, call and status, and leaves the stored credential as it was.
func TestProviderFaultMatrix(t *testing.T) {
	const timeout = 2 * time.Second
	closedPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	cases := []struct {
		name   string
		route  string
		fault  simulator.Fault
		path   string // creds/ or rotate-root/
		config string // which config: "ops" or "ob"
		base   string // overrides base_url
		want   []string
		ok     bool // the call must succeed despite the fault
	}{
		{name: "500 on every try", route: simulator.RouteOpsNowToken, fault: simulator.Fault{Status: 500, Times: -1},
			path: "creds/", config: "ops", want: []string{"opsnow", "mint token", "status 500"}},
		{name: "503 with Retry-After, then fine", route: simulator.RouteOpsNowToken, fault: simulator.Fault{Status: 503, RetryAfter: 1},
			path: "creds/", config: "ops", ok: true},
		{name: "429 with Retry-After past the deadline", route: simulator.RouteOpsNowToken, fault: simulator.Fault{Status: 429, RetryAfter: 120, Times: -1},
			path: "creds/", config: "ops", want: []string{"opsnow", "mint token", "status 429"}},
		{name: "connection refused", path: "creds/", config: "ops", base: closedPort,
			want: []string{"opsnow", "mint token", "transport error"}},
		{name: "hang past request_timeout", route: simulator.RouteOpsNowToken, fault: simulator.Fault{Hang: true, Times: -1},
			path: "creds/", config: "ops", want: []string{"opsnow", "mint token", "deadline exceeded"}},
		{name: "garbage body", route: simulator.RouteOpsNowToken, fault: simulator.Fault{Body: "<html>oops</html>"},
			path: "creds/", config: "ops", want: []string{"opsnow", "mint token", "malformed response"}},
		{name: "64 MiB body", route: simulator.RouteOffBlocksToken, fault: simulator.Fault{BodySize: 64 << 20},
			path: "creds/", config: "ob", want: []string{"offblocks", "mint token", "exceeds 64 KiB"}},
		{name: "401 in the middle of a rotation", route: simulator.RouteOffBlocksCredentials, fault: simulator.Fault{Status: 401},
			path: "rotate-root/", config: "ob", want: []string{"offblocks", "update credentials", "status 401"}},
		{name: "garbage answer to the rotation's PUT, applied", route: simulator.RouteOffBlocksCredentials,
			fault: simulator.Fault{AfterApply: true, Status: 200, Body: "\x00\xff"}, path: "rotate-root/", config: "ob", ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ob, ops := h.offblocksConfig(), h.opsnowConfig()
			ob["request_timeout"], ops["request_timeout"] = int(timeout.Seconds()), int(timeout.Seconds())
			if tc.base != "" {
				ops["base_url"] = tc.base
			}
			h.mustDo(logical.CreateOperation, "config/ob", ob)
			h.mustDo(logical.CreateOperation, "config/ops", ops)
			before := *h.stored(tc.config)
			if tc.route != "" {
				h.sim.Inject(tc.route, tc.fault)
			}

			var op logical.Operation = logical.ReadOperation
			if tc.path == "rotate-root/" {
				op = logical.UpdateOperation
			}
			start := time.Now()
			resp, err := h.do(op, tc.path+tc.config, nil)
			elapsed := time.Since(start)
			// Bounded by request_timeout, not by the fault: a generous ceiling, so that a
			// slow, loaded machine cannot fail it, yet far below what a hang or a 120 s
			// Retry-After would take.
			if ceiling := timeout + 10*time.Second; elapsed > ceiling {
				t.Errorf("took %s with request_timeout %s", elapsed, timeout)
			}
			failed := err != nil || (resp != nil && resp.IsError())
			if tc.ok {
				if failed {
					t.Fatalf("want success, got %v %v", err, respErr(resp))
				}
				if tc.path == "rotate-root/" {
					h.assertOffBlocksConsistent("ob")
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error, got %v", resp)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if after := *h.stored(tc.config); !reflect.DeepEqual(before, after) {
				t.Error("a failed call changed the stored config")
			}
			if tc.config == "ob" {
				if key, _ := h.sim.OffBlocksPair(h.obID); key != obKey {
					t.Error("the provider's pair changed")
				}
			}
			t.Logf("%s: %s after %s", tc.name, err, elapsed.Round(time.Millisecond))
		})
	}
}
