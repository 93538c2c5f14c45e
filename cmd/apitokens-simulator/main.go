// Command apitokens-simulator serves the provider simulator (package simulator) on a loopback
// address for `make dev`: one OffBlocks integration, one Bloq account with a client key, and
// one OpsNow API key, all with fresh random credentials. It writes them, with the base URL
// of each provider, as shell assignments to -env-file, then serves until interrupted.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/apitokens/vault-plugin-secrets-apitokens/simulator"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	envFile := flag.String("env-file", "", "where to write the demo credentials as KEY='value' lines (required)")
	flag.Parse()
	if *envFile == "" {
		log.Fatal("-env-file is required")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-addr must be a loopback address, got %q", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	url := "http://" + ln.Addr().String()

	sim := simulator.New()
	obKey, obSecret := uuid.NewString(), randHex(40)
	sim.AddOffBlocks(obKey, obSecret)
	email, password := "dev@example.com", randHex(16)
	uid := sim.AddBloqUser(email, password)
	clientID, clientSecret := randHex(40), randHex(80)
	sim.AddBloqKey(uid, clientID, clientSecret)
	opsKey := "ops-" + randHex(32)
	sim.AddOpsNowKey(opsKey)

	env := fmt.Sprintf(`SIM_URL='%s'
OFFBLOCKS_BASE_URL='%s'
OFFBLOCKS_API_KEY='%s'
OFFBLOCKS_API_SECRET='%s'
BLOQ_BASE_URL='%s'
BLOQ_CLIENT_ID='%s'
BLOQ_CLIENT_SECRET='%s'
BLOQ_USERNAME='%s'
BLOQ_PASSWORD='%s'
OPSNOW_BASE_URL='%s'
OPSNOW_API_KEY='%s'
`, url, url+simulator.OffBlocksPrefix, obKey, obSecret, url+simulator.BloqPrefix, clientID, clientSecret,
		email, password, url+simulator.OpsNowPrefix, opsKey)
	if err := os.WriteFile(*envFile, []byte(env), 0o600); err != nil {
		log.Fatal(err)
	}

	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("provider simulator on %s (OffBlocks %s, Bloq %s, OpsNow %s)", url,
		simulator.OffBlocksPrefix, simulator.BloqPrefix, simulator.OpsNowPrefix)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func randHex(n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
