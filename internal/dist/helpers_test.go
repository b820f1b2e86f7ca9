package dist

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// member is one entry read back from an archive.
type member struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
	data  []byte
	hdr   *tar.Header // tar only
}

// readArchive reads a .tar.gz or .zip written by Build, in archive order.
func readArchive(t *testing.T, path string) []member {
	t.Helper()
	if strings.HasSuffix(path, ".zip") {
		return readZip(t, path)
	}
	ms, _ := readTarGz(t, path)
	return ms
}

func readTarGz(t *testing.T, path string) ([]member, gzip.Header) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []member
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, hdr.Name, err)
		}
		out = append(out, member{name: hdr.Name, mode: hdr.FileInfo().Mode(), mtime: hdr.ModTime, data: data, hdr: hdr})
	}
	return out, gz.Header
}

func readZip(t *testing.T, path string) []member {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer zr.Close()
	var out []member
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		out = append(out, member{name: f.Name, mode: f.Mode(), mtime: f.Modified, data: data})
	}
	return out
}

// writeTree writes files (slash path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
