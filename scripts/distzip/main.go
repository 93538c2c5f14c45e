// Command distzip packages release binaries the way HashiCorp publishes its plugins: one zip
// per platform, named <name>_<version without "v">_<os>_<arch>.zip and holding the binary
// alone; a SHA256SUMS over the zips; and PLUGIN_SHA256SUMS, the sha256 of each binary, which
// is the number `vault plugin register -sha256` needs. scripts/release.sh builds the binaries
// and runs it; it needs nothing but Go (no zip or sha256sum tool).
//
//	go run ./scripts/distzip -name NAME -version vX.Y.Z -mtime UNIX_SECONDS -dist DIR BUILD_DIR
//
// BUILD_DIR holds one directory per platform, <os>_<arch>, each with the binary NAME (NAME.exe
// for windows). The zips are deterministic: one entry, mode 0755, the modification time
// -mtime, Go's own deflate; the same binaries and mtime always give byte-identical zips.
package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

// semver is what Vault accepts as a plugin version, with the leading "v" this project uses.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// platformDir is <os>_<arch>, as Go spells them.
var platformDir = regexp.MustCompile(`^[a-z0-9]+_[a-z0-9]+$`)

// artifact is one packaged platform.
type artifact struct {
	Platform  string // <os>_<arch>
	Binary    string // the file name inside the zip
	Zip       string // the zip's file name in the dist directory
	BinarySum string // hex sha256 of the binary
	ZipSum    string // hex sha256 of the zip
	ZipSize   int64
}

func main() {
	name := flag.String("name", "", "the binary's name (required)")
	version := flag.String("version", "", "the release version, vX.Y.Z (required)")
	mtime := flag.Int64("mtime", 0, "modification time of the zip entries, Unix seconds (required, at least 1980-01-01)")
	dist := flag.String("dist", "dist", "where the zips and sums are written")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: distzip -name NAME -version vX.Y.Z -mtime SECONDS [-dist DIR] BUILD_DIR")
		os.Exit(2)
	}
	arts, err := release(*name, *version, time.Unix(*mtime, 0), flag.Arg(0), *dist)
	if err != nil {
		fmt.Fprintln(os.Stderr, "distzip:", err)
		os.Exit(1)
	}
	printTable(os.Stdout, arts)
}

// release packages every platform directory under build into dist and writes both sums
// files, one line per platform in the order of the platforms' names. It returns the
// artifacts in that order.
func release(name, version string, mtime time.Time, build, dist string) ([]artifact, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("-name %q: want a file name", name)
	}
	if !semver.MatchString(version) {
		return nil, fmt.Errorf("-version %q: want a semantic version with a leading v, such as v1.2.3", version)
	}
	if mtime.Before(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
		return nil, fmt.Errorf("-mtime %d: a zip cannot hold a time before 1980-01-01", mtime.Unix())
	}
	entries, err := os.ReadDir(build)
	if err != nil {
		return nil, fmt.Errorf("read build directory: %w", err)
	}
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return nil, fmt.Errorf("create dist directory: %w", err)
	}
	var arts []artifact
	for _, e := range entries { // ReadDir sorts by name
		if !e.IsDir() || !platformDir.MatchString(e.Name()) {
			return nil, fmt.Errorf("%s: not a <os>_<arch> directory", filepath.Join(build, e.Name()))
		}
		bin := name
		if strings.HasPrefix(e.Name(), "windows_") {
			bin += ".exe"
		}
		a, err := pack(filepath.Join(build, e.Name(), bin), bin,
			filepath.Join(dist, fmt.Sprintf("%s_%s_%s.zip", name, strings.TrimPrefix(version, "v"), e.Name())), mtime)
		if err != nil {
			return nil, err
		}
		a.Platform = e.Name()
		arts = append(arts, a)
	}
	if len(arts) == 0 {
		return nil, errors.New("no platform directory in the build directory")
	}
	var zips, bins []string
	for _, a := range arts {
		zips = append(zips, fmt.Sprintf("%s  %s\n", a.ZipSum, a.Zip))
		bins = append(bins, fmt.Sprintf("%s  %s/%s\n", a.BinarySum, a.Platform, a.Binary))
	}
	if err := writeSums(filepath.Join(dist, "SHA256SUMS"), zips); err != nil {
		return nil, err
	}
	if err := writeSums(filepath.Join(dist, "PLUGIN_SHA256SUMS"), bins); err != nil {
		return nil, err
	}
	return arts, nil
}

// pack writes a zip at zipPath holding the file at binPath as entry, and returns the sums.
func pack(binPath, entry, zipPath string, mtime time.Time) (artifact, error) {
	data, err := os.ReadFile(binPath)
	if err != nil {
		return artifact{}, fmt.Errorf("read binary: %w", err)
	}
	var buf bytes.Buffer
	if err := zipOne(&buf, entry, data, mtime); err != nil {
		return artifact{}, fmt.Errorf("zip %s: %w", binPath, err)
	}
	if err := os.WriteFile(zipPath, buf.Bytes(), 0o644); err != nil {
		return artifact{}, fmt.Errorf("write zip: %w", err)
	}
	bs, zs := sha256.Sum256(data), sha256.Sum256(buf.Bytes())
	return artifact{Binary: entry, Zip: filepath.Base(zipPath), BinarySum: hex.EncodeToString(bs[:]),
		ZipSum: hex.EncodeToString(zs[:]), ZipSize: int64(buf.Len())}, nil
}

// zipOne writes a zip archive with the single executable entry name (mode 0755, modified at
// mtime in UTC) to w. Nothing else of the machine (owner, local time zone, umask) enters it.
func zipOne(w io.Writer, name string, data []byte, mtime time.Time) error {
	zw := zip.NewWriter(w)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mtime.UTC()}
	h.SetMode(0o755)
	f, err := zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("create entry: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write entry: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("close archive: %w", err)
	}
	return nil
}

func writeSums(path string, lines []string) error {
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// printTable prints one line per platform: the zip, its size, and the register sha256.
func printTable(w io.Writer, arts []artifact) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "zip\tbytes\tsha256 of the binary (vault plugin register -sha256=...)")
	for _, a := range arts {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", a.Zip, a.ZipSize, a.BinarySum)
	}
	_ = tw.Flush()
}
