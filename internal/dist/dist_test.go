package dist

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var mtime = time.Date(2025, 6, 1, 12, 30, 45, 0, time.UTC)

// sample writes a small tree and returns the files to pack from it.
func sample(t *testing.T, dir string) []file {
	t.Helper()
	writeTree(t, dir, map[string]string{
		"bin/entraproxy":         "\x7fELF not really",
		"README.md":              "# entraproxy\n",
		"mod/a/LICENSE":          "MIT\n",
		"mod/b/NOTICE":           "notice\n",
		"mod/b/internal/LICENSE": "BSD\n",
	})
	top := "entraproxy_v1.2.3_linux_amd64/"
	return []file{
		{name: top + "licenses/b/internal/LICENSE", mode: 0o644, src: filepath.Join(dir, "mod/b/internal/LICENSE")},
		{name: top + "entraproxy", mode: 0o755, src: filepath.Join(dir, "bin/entraproxy")},
		{name: top + "licenses/a/LICENSE", mode: 0o644, src: filepath.Join(dir, "mod/a/LICENSE")},
		{name: top + "README.md", mode: 0o644, src: filepath.Join(dir, "README.md")},
		{name: top + "licenses/b/NOTICE", mode: 0o644, src: filepath.Join(dir, "mod/b/NOTICE")},
	}
}

func TestEntriesListDirectoriesFirstInNameOrder(t *testing.T) {
	var got []string
	for _, e := range entries(sample(t, t.TempDir())) {
		got = append(got, e.name)
	}
	want := []string{
		"entraproxy_v1.2.3_linux_amd64/",
		"entraproxy_v1.2.3_linux_amd64/README.md",
		"entraproxy_v1.2.3_linux_amd64/entraproxy",
		"entraproxy_v1.2.3_linux_amd64/licenses/",
		"entraproxy_v1.2.3_linux_amd64/licenses/a/",
		"entraproxy_v1.2.3_linux_amd64/licenses/a/LICENSE",
		"entraproxy_v1.2.3_linux_amd64/licenses/b/",
		"entraproxy_v1.2.3_linux_amd64/licenses/b/NOTICE",
		"entraproxy_v1.2.3_linux_amd64/licenses/b/internal/",
		"entraproxy_v1.2.3_linux_amd64/licenses/b/internal/LICENSE",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The archive bytes depend on the names, contents and modes given and on
// mtime, nothing else: not the order files are listed in, not the source
// directory, not the files' own times or permissions on disk, not the time
// zone mtime is expressed in.
func TestArchivesAreReproducible(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a, b := sample(t, dirA), sample(t, dirB)
	slices.Reverse(b)
	for _, f := range b {
		if err := os.Chtimes(f.src, time.Unix(1, 0), time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f.src, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	elsewhere := mtime.In(time.FixedZone("UTC+5", 5*3600))
	for _, tc := range []struct {
		name  string
		write func(w *bytes.Buffer, files []file, mtime time.Time) error
	}{
		{"tar.gz", func(w *bytes.Buffer, f []file, m time.Time) error { return writeTarGz(w, f, m) }},
		{"zip", func(w *bytes.Buffer, f []file, m time.Time) error { return writeZip(w, f, m) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first, second, third bytes.Buffer
			if err := tc.write(&first, a, mtime); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(&second, b, elsewhere); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Errorf("two archives of the same files differ (%d and %d bytes)", first.Len(), second.Len())
			}
			if err := tc.write(&third, a, mtime.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(first.Bytes(), third.Bytes()) {
				t.Error("archives with different times are identical: mtime is not written")
			}
		})
	}
}

func TestTarGzHeaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.tar.gz")
	if err := writeFile(path, func(w io.Writer) error { return writeTarGz(w, sample(t, dir), mtime) }); err != nil {
		t.Fatal(err)
	}
	members, gzh := readTarGz(t, path)
	if gzh.Name != "" || gzh.Comment != "" || !gzh.ModTime.IsZero() || gzh.OS != 255 {
		t.Errorf("gzip header name %q comment %q mtime %v OS %d, want none, none, zero (MTIME 0), 255 (unknown)", gzh.Name, gzh.Comment, gzh.ModTime, gzh.OS)
	}
	for _, m := range members {
		h := m.hdr
		wantMode, wantType := int64(0o644), byte(tar.TypeReg)
		switch {
		case strings.HasSuffix(h.Name, "/"):
			wantMode, wantType = 0o755, tar.TypeDir
		case strings.HasSuffix(h.Name, "/entraproxy"):
			wantMode = 0o755
		}
		if h.Mode != wantMode || h.Typeflag != wantType {
			t.Errorf("%s: mode %o type %q, want %o %q", h.Name, h.Mode, h.Typeflag, wantMode, wantType)
		}
		if !h.ModTime.Equal(mtime) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || h.Format != tar.FormatUSTAR {
			t.Errorf("%s: mtime %v uid %d gid %d uname %q gname %q format %v, want %v, 0, 0, none, none, USTAR",
				h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname, h.Format, mtime)
		}
	}
	if got := string(members[1].data); got != "# entraproxy\n" {
		t.Errorf("%s holds %q, want the README", members[1].name, got)
	}
}

func TestZipHeaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.zip")
	if err := writeFile(path, func(w io.Writer) error { return writeZip(w, sample(t, dir), mtime) }); err != nil {
		t.Fatal(err)
	}
	for _, m := range readZip(t, path) {
		want := fs.FileMode(0o644)
		switch {
		case strings.HasSuffix(m.name, "/"):
			want = fs.ModeDir | 0o755
		case strings.HasSuffix(m.name, "/entraproxy"):
			want = 0o755
		}
		if m.mode != want {
			t.Errorf("%s: mode %v, want %v", m.name, m.mode, want)
		}
		if !m.mtime.Equal(mtime) {
			t.Errorf("%s: modified %v, want %v", m.name, m.mtime, mtime)
		}
	}
}

func TestIsNotice(t *testing.T) {
	for name, want := range map[string]bool{
		"LICENSE": true, "LICENSE.txt": true, "LICENSE.md": true, "license": true, "LICENCE": true,
		"LICENSE-APACHE": true, "LICENSE_MIT": true, "COPYING": true, "COPYING.LESSER": true,
		"NOTICE": true, "NOTICE.txt": true, "PATENTS": true,
		"README.md": false, "AUTHORS": false, "licenses.go": false, "LICENSEE": false, "go.mod": false,
	} {
		if got := isNotice(name); got != want {
			t.Errorf("isNotice(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	good := func(t *testing.T) Options {
		return Options{Root: ".", Out: t.TempDir(), Version: "v1.2.3", Commit: "0123abc", Time: mtime}
	}
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string // "" for no error
	}{
		{"good", func(*Options) {}, ""},
		{"version_empty", func(o *Options) { o.Version = "" }, `version ""`},
		{"version_path", func(o *Options) { o.Version = "../v1" }, `version "../v1"`},
		{"version_space", func(o *Options) { o.Version = "v1 -X main.commit=x" }, "letters, digits"},
		{"commit_empty", func(o *Options) { o.Commit = "" }, `commit ""`},
		{"time_before_1980", func(o *Options) { o.Time = time.Unix(0, 0) }, "from 1980 on"},
		{"time_fraction", func(o *Options) { o.Time = mtime.Add(time.Millisecond) }, "whole seconds"},
		{"stale_sums", func(o *Options) { writeTree(t, o.Out, map[string]string{SumsFile: ""}) }, "already holds SHA256SUMS"},
		{"stale_archive", func(o *Options) { writeTree(t, o.Out, map[string]string{"entraproxy_v0_linux_amd64.tar.gz": ""}) }, "remove the old release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good(t)
			tc.change(&o)
			err := o.check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("check() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("check() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		target  Target
		archive string
		exe     string
	}{
		{Target{"linux", "amd64"}, "entraproxy_v1.2.3_linux_amd64.tar.gz", "entraproxy"},
		{Target{"darwin", "arm64"}, "entraproxy_v1.2.3_darwin_arm64.tar.gz", "entraproxy"},
		{Target{"windows", "arm64"}, "entraproxy_v1.2.3_windows_arm64.zip", "entraproxy.exe"},
	} {
		if got := ArchiveName("v1.2.3", tc.target); got != tc.archive {
			t.Errorf("ArchiveName(v1.2.3, %s) = %q, want %q", tc.target, got, tc.archive)
		}
		if got := tc.target.Exe(); got != tc.exe {
			t.Errorf("%s.Exe() = %q, want %q", tc.target, got, tc.exe)
		}
	}
	if n := len(Targets()); n != 6 {
		t.Errorf("len(Targets()) = %d, want 6: linux, darwin, windows x amd64, arm64", n)
	}
}
