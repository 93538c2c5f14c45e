package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBuild lays out a build directory as scripts/release.sh does, one binary per platform
// with content unique to it, and returns the directory. skew shifts the files' times on
// disk and changes their mode, which must not reach the zips.
func fakeBuild(t *testing.T, skew time.Duration, platforms ...string) string {
	t.Helper()
	build := t.TempDir()
	for _, p := range platforms {
		bin := "plug"
		if strings.HasPrefix(p, "windows_") {
			bin += ".exe"
		}
		if err := os.MkdirAll(filepath.Join(build, p), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(build, p, bin)
		mode := os.FileMode(0o700)
		if skew != 0 {
			mode = 0o750
		}
		if err := os.WriteFile(path, []byte(strings.Repeat("binary for "+p+"\n", 1000)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, time.Now(), time.Now().Add(skew)); err != nil {
			t.Fatal(err)
		}
	}
	return build
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestReleaseLayoutAndSums(t *testing.T) {
	build := fakeBuild(t, 0, "linux_amd64", "windows_amd64", "darwin_arm64")
	dist := t.TempDir()
	mtime := time.Date(2026, 11, 25, 18, 30, 0, 0, time.UTC)
	arts, err := release("plug", "v1.2.3-rc.1", mtime, build, dist)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 3 {
		t.Fatalf("%d artifacts, want 3", len(arts))
	}
	var wantZips, wantBins strings.Builder
	for _, p := range []string{"darwin_arm64", "linux_amd64", "windows_amd64"} {
		bin := "plug"
		if p == "windows_amd64" {
			bin = "plug.exe"
		}
		zipName := "plug_1.2.3-rc.1_" + p + ".zip" // HashiCorp's naming: no "v"
		data, err := os.ReadFile(filepath.Join(dist, zipName))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(zr.File) != 1 {
			t.Fatalf("%s: %d entries, want the binary alone", zipName, len(zr.File))
		}
		f := zr.File[0]
		if f.Name != bin || f.Mode() != 0o755 || !f.Modified.Equal(mtime) {
			t.Errorf("%s: entry %q mode %v modified %v, want %q 0755 %v", zipName, f.Name, f.Mode(), f.Modified, bin, mtime)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var content bytes.Buffer
		if _, err := content.ReadFrom(rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		orig, _ := os.ReadFile(filepath.Join(build, p, bin))
		if !bytes.Equal(content.Bytes(), orig) {
			t.Errorf("%s: the entry is not the binary", zipName)
		}
		fmt.Fprintf(&wantZips, "%s  %s\n", sum(data), zipName)
		fmt.Fprintf(&wantBins, "%s  %s/%s\n", sum(orig), p, bin)
	}
	for file, want := range map[string]string{"SHA256SUMS": wantZips.String(), "PLUGIN_SHA256SUMS": wantBins.String()} {
		got, err := os.ReadFile(filepath.Join(dist, file))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n%s\nwant:\n%s", file, got, want)
		}
	}
}

// The same binaries and mtime give byte-identical zips, whatever the files' own modes and
// times on disk; another mtime gives other bytes (the time is really in the zip).
func TestZipsAreDeterministic(t *testing.T) {
	mtime := time.Unix(1764095400, 0)
	zipsOf := func(build string, mtime time.Time) map[string]string {
		dist := t.TempDir()
		if _, err := release("plug", "v0.1.0", mtime, build, dist); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		files, _ := os.ReadDir(dist)
		for _, f := range files {
			b, _ := os.ReadFile(filepath.Join(dist, f.Name()))
			out[f.Name()] = sum(b)
		}
		return out
	}
	a := zipsOf(fakeBuild(t, 0, "linux_amd64", "freebsd_arm64"), mtime)
	b := zipsOf(fakeBuild(t, -3*time.Hour, "linux_amd64", "freebsd_arm64"), mtime)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("two packagings of the same binaries differ:\n%v\n%v", a, b)
	}
	if c := zipsOf(fakeBuild(t, 0, "linux_amd64", "freebsd_arm64"), mtime.Add(2*time.Second)); c["SHA256SUMS"] == a["SHA256SUMS"] {
		t.Error("another mtime gave the same zips")
	}
}

func TestReleaseRefusesBadInput(t *testing.T) {
	good := fakeBuild(t, 0, "linux_amd64")
	stray := fakeBuild(t, 0, "linux_amd64")
	if err := os.WriteFile(filepath.Join(stray, "notes.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1764095400, 0)
	for _, c := range []struct {
		name, version string
		mtime         time.Time
		build, want   string
	}{
		{"plug", "1.2.3", mtime, good, "-version"},
		{"plug", "v1.2", mtime, good, "-version"},
		{"plug", "v01.2.3", mtime, good, "-version"},
		{"", "v1.2.3", mtime, good, "-name"},
		{"a/plug", "v1.2.3", mtime, good, "-name"},
		{"plug", "v1.2.3", time.Unix(0, 0), good, "-mtime"},
		{"plug", "v1.2.3", mtime, stray, "not a <os>_<arch> directory"},
		{"plug", "v1.2.3", mtime, t.TempDir(), "no platform directory"},
	} {
		_, err := release(c.name, c.version, c.mtime, c.build, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("release(%q, %q, %v): err %v, want one naming %q", c.name, c.version, c.mtime.Unix(), err, c.want)
		}
	}
}
