//go:build acceptance

package acceptance

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
)

// cliAll runs the vault CLI and returns what it printed on stdout and stderr together (the
// CLI prints Vault's warnings on stderr), and whether it exited zero.
func (v *vaultServer) cliAll(args ...string) (string, bool) {
	v.t.Helper()
	cmd := exec.Command(vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "VAULT_TOKEN="+v.client.Token(), "HOME="+v.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err == nil
}

// get answers a GET of /v1/path (with its query) with the root token: the status, the
// content type and the body.
func (v *vaultServer) get(path string) (int, string, []byte) {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodGet, v.addr+"/v1/"+path, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.client.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}
