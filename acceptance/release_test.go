//go:build acceptance

package acceptance

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The release the tests build: linux/amd64 only (make release builds all seven platforms).
const (
	releaseVersion = "v0.9.0-acc"
	releaseZip     = pluginName + "_0.9.0-acc_linux_amd64.zip" // HashiCorp's naming: no "v"
	releaseEpoch   = 1764095400                                // 2025-11-25T18:30:00Z
)

var (
	releaseOnce sync.Once
	releaseRoot string // the copy of the tree the release was built from
	releaseDist string
	releaseErr  error
)

// builtRelease runs scripts/release.sh once, from a copy of the working tree (so that the
// source cannot change under a second build), and returns the tree and its dist directory.
func builtRelease(t *testing.T) (root, dist string) {
	t.Helper()
	releaseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "apitokens-release-")
		if err != nil {
			releaseErr = err
			return
		}
		sharedStop = append(sharedStop, func() { os.RemoveAll(dir) })
		releaseRoot, releaseDist = filepath.Join(dir, "src"), filepath.Join(dir, "dist")
		if releaseErr = copyTree("..", releaseRoot); releaseErr == nil {
			releaseErr = runRelease(releaseRoot, releaseDist)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseRoot, releaseDist
}

// runRelease runs the tree's scripts/release.sh for linux/amd64 into dist.
func runRelease(root, dist string) error {
	cmd := exec.Command(filepath.Join(root, "scripts", "release.sh"))
	cmd.Env = append(os.Environ(), "VERSION="+releaseVersion, "PLATFORMS=linux/amd64", "DIST="+dist,
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", releaseEpoch))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("release.sh in %s: %w\n%s", root, err, out)
	}
	return nil
}

// copyTree copies the module's source tree from src to dst: everything but version control,
// build outputs, scratch and test binaries.
func copyTree(src, dst string) error {
	skip := map[string]bool{".git": true, ".tools": true, "bin": true, "dist": true, ".dev": true}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && skip[rel] || strings.HasSuffix(rel, ".test") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}

// unzipRelease returns the zip's bytes and its one entry's name, mode, time and content.
func unzipRelease(t *testing.T, dist string) (zipBytes []byte, entry *zip.File, bin []byte) {
	t.Helper()
	zipBytes, err := os.ReadFile(filepath.Join(dist, releaseZip))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 {
		t.Fatalf("%s holds %d entries, want the plugin binary alone", releaseZip, len(zr.File))
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if bin, err = io.ReadAll(rc); err != nil {
		t.Fatal(err)
	}
	return zipBytes, zr.File[0], bin
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// The release's layout and content: the zip with the binary alone (0755, SOURCE_DATE_EPOCH),
// both sums files right, a static binary with the version stamped in and no path of the
// machine that built it. Then a second release from another copy of the tree, at another
// path, gives byte-identical zips, binaries and sums.
func TestReleaseIsReproducible(t *testing.T) {
	root, dist := builtRelease(t)
	files, _ := os.ReadDir(dist)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	if want := []string{"PLUGIN_SHA256SUMS", "SHA256SUMS", releaseZip}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("dist holds %v, want %v", names, want)
	}
	zipBytes, entry, bin := unzipRelease(t, dist)
	if entry.Name != pluginName || entry.Mode() != 0o755 || !entry.Modified.Equal(time.Unix(releaseEpoch, 0)) {
		t.Errorf("zip entry %q mode %v time %v, want %q 0755 %v", entry.Name, entry.Mode(), entry.Modified,
			pluginName, time.Unix(releaseEpoch, 0).UTC())
	}
	for file, want := range map[string]string{
		"SHA256SUMS":        hexSum(zipBytes) + "  " + releaseZip + "\n",
		"PLUGIN_SHA256SUMS": hexSum(bin) + "  linux_amd64/" + pluginName + "\n",
	} {
		if got, _ := os.ReadFile(filepath.Join(dist, file)); string(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}

	// What the build flags promise, read back from the binary.
	if !bytes.Contains(bin, []byte(releaseVersion)) {
		t.Errorf("the version %s is not stamped into the binary", releaseVersion)
	}
	if bytes.Contains(bin, []byte(root)) {
		t.Errorf("the binary holds the build tree's path %s (-trimpath)", root)
	}
	path := filepath.Join(t.TempDir(), pluginName)
	writeFile(t, path, string(bin))
	if f, err := elf.Open(path); err != nil {
		t.Error(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary is dynamically linked (CGO_ENABLED=0 expected)")
			}
		}
		f.Close()
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOAMD64": "v1", "vcs.revision": ""} {
		if settings[k] != want {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], want)
		}
	}

	// Again, from a copy of the copy elsewhere: nothing of the path or the moment may show.
	other := filepath.Join(t.TempDir(), "elsewhere", "checkout")
	if err := copyTree(root, other); err != nil {
		t.Fatal(err)
	}
	dist2 := filepath.Join(t.TempDir(), "dist")
	start := time.Now()
	if err := runRelease(other, dist2); err != nil {
		t.Fatal(err)
	}
	zip2, _, bin2 := unzipRelease(t, dist2)
	if !bytes.Equal(bin, bin2) {
		t.Fatalf("two builds of the same tree and version differ: binary sha256 %s vs %s", hexSum(bin), hexSum(bin2))
	}
	if !bytes.Equal(zipBytes, zip2) {
		t.Errorf("the zips differ though their binaries are equal: %s vs %s", hexSum(zipBytes), hexSum(zip2))
	}
	for _, f := range []string{"SHA256SUMS", "PLUGIN_SHA256SUMS"} {
		a, _ := os.ReadFile(filepath.Join(dist, f))
		b, _ := os.ReadFile(filepath.Join(dist2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two releases", f)
		}
	}
	t.Logf("linux/amd64 %s: binary sha256 %s, zip %d bytes, identical from two trees (second release %s)",
		releaseVersion, hexSum(bin), len(zipBytes), time.Since(start).Round(100*time.Millisecond))
}

// The README's install commands (upgradeRecipe), run as written against the release that
// scripts/release.sh built: download (from a file:// copy of its dist), check SHA256SUMS,
// unzip, register the binary's sha256 (PLUGIN_SHA256SUMS gives the same) under the release
// version in a file of its own, enable. The mount runs that version and that binary, serves
// creds, and its plugin process ends with the Vault.
func TestReleaseBinaryMountsInVault(t *testing.T) {
	_, dist := builtRelease(t)
	install, _, _ := upgradeRecipe(t)
	_, sim, url := shared(t)
	_, _, bin := unzipRelease(t, dist)
	sums, _ := os.ReadFile(filepath.Join(dist, "PLUGIN_SHA256SUMS"))
	sha, _, _ := strings.Cut(string(sums), " ")
	if sha != hexSum(bin) {
		t.Fatalf("PLUGIN_SHA256SUMS gives %s, the unzipped binary is %s", sha, hexSum(bin))
	}
	plugins, releases := t.TempDir(), t.TempDir()
	if err := os.Symlink(dist, filepath.Join(releases, releaseVersion)); err != nil {
		t.Fatal(err)
	}
	// Registered before Vault starts, so it runs after Vault is stopped.
	t.Cleanup(func() {
		for _, p := range liveProcs() {
			if strings.HasPrefix(p.exe, plugins+string(os.PathSeparator)) {
				if _, alive := awaitExit([]int{p.pid}, pluginExitLimit); len(alive) > 0 {
					t.Errorf("the released plugin (pid %d) outlived its Vault", p.pid)
				}
			}
		}
	})
	v := startDevWithPlugins(t, plugins)
	(&recipeRun{v: v, work: t.TempDir(), plugins: plugins, releases: releases}).run(t, "install", install, releaseVersion, "")

	info := v.cliJSON("plugin", "info", "-version="+releaseVersion, "secret", pluginName)
	if info["version"] != releaseVersion || info["sha256"] != sha || info["command"] != pluginName+"_"+releaseVersion {
		t.Errorf("plugin info: %v", info)
	}
	m := v.cliJSON("secrets", "list", "-detailed")["apitokens/"].(map[string]any)
	if m["running_plugin_version"] != releaseVersion || m["running_sha256"] != sha {
		t.Fatalf("the mount runs %v (%v), want the release %s (%s)", m["running_plugin_version"], m["running_sha256"], releaseVersion, sha)
	}

	accts, _, _ := seedAccounts(sim, url, "release")
	for _, a := range accts {
		if _, err := v.client.Logical().Write("apitokens/config/"+a.name, a.config); err != nil {
			t.Fatal(err)
		}
		s, err := v.client.Logical().Read("apitokens/creds/" + a.name)
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		if _, err := sim.Validate(s.Data["token"].(string)); err != nil {
			t.Errorf("%s: the released plugin's token is refused: %v", a.name, err)
		}
	}
	t.Logf("the released %s (sha256 %s) runs as %v and serves every provider", releaseZip, sha[:12], m["running_plugin_version"])
}
