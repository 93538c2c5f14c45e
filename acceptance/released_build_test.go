//go:build acceptance

package acceptance

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The release users run: v0.1.0, which the CHANGELOG calls released, is this commit.
const (
	releasedVersion = "v0.1.0"
	releasedCommit  = "06a1864472fcf566a1689d21a74df350254b33ae"
)

// buildReleased builds the plugin as released at releasedCommit, out of this clone's own git
// history (no network but the Go module proxy, for its modules), the way that commit's
// Makefile builds it (`make build VERSION=v0.1.0`: -ldflags -X <pkg>.Version), and puts it in
// the suite's plugin directory as <plugin>-<releasedVersion>, with its sha256 in shas. The
// build is cached under .tools/released/<commit>/ (git-ignored), so a rerun takes no time. A
// clone without that commit (a shallow one) fails the test, saying how to get it.
func buildReleased(t *testing.T) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) ([]byte, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return out, err
	}
	if _, err := git("cat-file", "-e", releasedCommit+"^{commit}"); err != nil {
		shallow, _ := git("rev-parse", "--is-shallow-repository")
		t.Fatalf("this clone's history lacks commit %s, the released %s, which this test builds and upgrades from "+
			"(shallow clone: %s). Fetch the whole history (`git fetch --unshallow`, or clone without --depth) "+
			"and run it again", releasedCommit[:7], releasedVersion, strings.TrimSpace(string(shallow)))
	}
	cache := filepath.Join(root, ".tools", "released", releasedCommit)
	bin := filepath.Join(cache, pluginName)
	if _, err := os.Stat(bin); err != nil {
		src := t.TempDir()
		tarball, err := git("archive", "--format=tar", releasedCommit)
		if err != nil {
			t.Fatalf("git archive %s: %v", releasedCommit, err)
		}
		extract(t, tarball, src)
		if err := os.MkdirAll(cache, 0o755); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(cache, pluginName+".building")
		cmd := exec.Command("go", "build", "-ldflags",
			"-X github.com/apitokens/vault-plugin-secrets-apitokens.Version="+releasedVersion,
			"-o", tmp, "./cmd/"+pluginName)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s at %s: %v\n%s", releasedVersion, releasedCommit[:7], err, out)
		}
		if err := os.Rename(tmp, bin); err != nil { // whole or not at all
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(releasedVersion)) {
		t.Fatalf("%s does not hold its version %s: remove %s and run again", bin, releasedVersion, cache)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, pluginName+"-"+releasedVersion), data, 0o755); err != nil {
		t.Fatal(err)
	}
	shas[releasedVersion] = hexSum(data)
}

// extract writes the files of a tar archive under dir.
func extract(t *testing.T, tarball []byte, dir string) {
	t.Helper()
	r := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var b []byte
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				b, err = io.ReadAll(r)
			}
			if err == nil {
				err = os.WriteFile(path, b, os.FileMode(h.Mode)&0o755|0o600)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
