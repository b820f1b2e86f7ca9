// Package dist builds entraproxy's release archives: a static binary for each
// supported operating system and architecture, packed with the README and the
// license notices of everything linked into it, plus a SHA256SUMS file. The
// same commit built with the same Go toolchain gives the same bytes.
package dist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Target is one GOOS/GOARCH pair a release is built for.
type Target struct {
	OS, Arch string
}

func (t Target) String() string { return t.OS + "/" + t.Arch }

// Exe is the binary's file name on the target: entraproxy, or entraproxy.exe
// on Windows.
func (t Target) Exe() string {
	if t.OS == "windows" {
		return "entraproxy.exe"
	}
	return "entraproxy"
}

// Targets returns the platforms a release covers: Linux, macOS and Windows,
// each on amd64 and arm64.
func Targets() []Target {
	var ts []Target
	for _, goos := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			ts = append(ts, Target{goos, arch})
		}
	}
	return ts
}

// Options says what Build builds and where.
type Options struct {
	// Root is the module root (go.mod, README.md, cmd/entraproxy).
	Root string
	// Out is the directory for the archives and SHA256SUMS. It is created
	// if missing and must hold no archive or SHA256SUMS already, so that no
	// stale file sits beside a new checksum list.
	Out string
	// Version is stamped into the binary as main.version and names the
	// archives; letters, digits and . _ + - only (it becomes a file name).
	Version string
	// Commit is stamped into the binary as main.commit; same characters.
	Commit string
	// Time is the modification time of every archive entry, whole seconds
	// from 1980 on (the zip format cannot say earlier): the commit's time
	// (SOURCE_DATE_EPOCH, https://reproducible-builds.org/specs/source-date-epoch/).
	Time time.Time
	// Targets to build; all of Targets() when nil.
	Targets []Target
	// Go is the go command; "go" when empty.
	Go string
	// Env is the environment go runs in; nil means this process's, as for
	// exec.Cmd. Build appends the settings that fix the output, which win.
	Env []string
	// Log, when set, gets one line per step.
	Log io.Writer
}

// Archive is one file Build wrote.
type Archive struct {
	Target Target
	Name   string // file name in Options.Out
	Size   int64  // bytes
	SHA256 string // lower-case hex
}

// SumsFile is the name of the checksum list: one "HEX  NAME" line per
// archive, the format of sha256sum and shasum -a 256.
const SumsFile = "SHA256SUMS"

// Main is the package Build compiles.
const Main = "./cmd/entraproxy"

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// ArchiveName returns the archive file name for a version and target:
// entraproxy_VERSION_OS_ARCH.tar.gz, or .zip for Windows (the format its
// Explorer and Expand-Archive open without extra tools).
func ArchiveName(version string, t Target) string {
	if t.OS == "windows" {
		return Dir(version, t) + ".zip"
	}
	return Dir(version, t) + ".tar.gz"
}

// Dir returns the one top-level directory inside an archive:
// entraproxy_VERSION_OS_ARCH.
func Dir(version string, t Target) string {
	return "entraproxy_" + version + "_" + t.OS + "_" + t.Arch
}

// Build compiles entraproxy for each target, packs each binary with the
// README (its links to other files of the repository pointed at them on
// the web: archiveREADME) and the license notices, and writes SHA256SUMS. It returns the
// archives in the order of the targets.
func Build(ctx context.Context, o Options) ([]Archive, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Targets == nil {
		o.Targets = Targets()
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "entraproxy-dist-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if v, err := o.goCmd(ctx, o.Env, "env", "GOVERSION"); err == nil {
		o.logf("toolchain %s", bytes.TrimSpace(v))
	}

	readme, err := o.readme(work)
	if err != nil {
		return nil, err
	}
	var archives []Archive
	for _, t := range o.Targets {
		a, err := o.buildOne(ctx, t, filepath.Join(work, t.OS+"_"+t.Arch), readme)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		archives = append(archives, a)
	}
	var sums bytes.Buffer
	for _, a := range slices.SortedFunc(slices.Values(archives), func(a, b Archive) int { return strings.Compare(a.Name, b.Name) }) {
		fmt.Fprintf(&sums, "%s  %s\n", a.SHA256, a.Name)
	}
	if err := os.WriteFile(filepath.Join(o.Out, SumsFile), sums.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return archives, nil
}

func (o *Options) check() error {
	var errs []error
	if !safeName.MatchString(o.Version) {
		errs = append(errs, fmt.Errorf("version %q: use letters, digits and . _ + - only (it names the archives), e.g. v1.2.3", o.Version))
	}
	if !safeName.MatchString(o.Commit) {
		errs = append(errs, fmt.Errorf("commit %q: use the commit hash (git rev-parse HEAD)", o.Commit))
	}
	if o.Time.Before(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) || o.Time.Nanosecond() != 0 {
		errs = append(errs, fmt.Errorf("time %v: want whole seconds from 1980 on (zip cannot store earlier times); use the commit's time, git log -1 --format=%%ct", o.Time))
	}
	if o.Root == "" || o.Out == "" {
		errs = append(errs, errors.New("root and out directories are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	entries, err := os.ReadDir(o.Out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if e.Name() == SumsFile || strings.HasPrefix(e.Name(), "entraproxy_") {
			return fmt.Errorf("%s already holds %s: remove the old release first (make dist does)", o.Out, e.Name())
		}
	}
	return nil
}

// readme writes the archives' README (archiveREADME) into work and returns
// its path.
func (o *Options) readme(work string) (string, error) {
	src, err := os.ReadFile(filepath.Join(o.Root, "README.md"))
	if err != nil {
		return "", err
	}
	repo, err := repositoryURL(o.Root)
	if err != nil {
		return "", err
	}
	path := filepath.Join(work, "README.md")
	return path, os.WriteFile(path, archiveREADME(src, repo, o.Commit), 0o644)
}

func (o *Options) buildOne(ctx context.Context, t Target, work, readme string) (Archive, error) {
	bin := filepath.Join(work, t.Exe())
	env := o.env(t)
	o.logf("build %s", t)
	ldflags := fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.commit=%s", o.Version, o.Commit)
	if _, err := o.goCmd(ctx, env, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, Main); err != nil {
		return Archive{}, err
	}
	notices, err := o.notices(ctx, env, bin)
	if err != nil {
		return Archive{}, err
	}
	top := Dir(o.Version, t) + "/"
	files := []file{
		{name: top + t.Exe(), mode: 0o755, src: bin},
		{name: top + "README.md", mode: 0o644, src: readme},
	}
	for _, n := range notices {
		files = append(files, file{name: top + n.name, mode: 0o644, src: n.src})
	}

	name := ArchiveName(o.Version, t)
	path := filepath.Join(o.Out, name)
	o.logf("pack %s (%d files)", name, len(files))
	write := writeTarGz
	if strings.HasSuffix(name, ".zip") {
		write = writeZip
	}
	if err := writeFile(path, func(w io.Writer) error { return write(w, files, o.Time) }); err != nil {
		return Archive{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return Archive{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Archive{}, err
	}
	return Archive{Target: t, Name: name, Size: n, SHA256: fmt.Sprintf("%x", h.Sum(nil))}, nil
}

// env is o.Env plus every setting that changes the output, each spelled out
// so that neither the caller's environment nor its `go env -w` file can
// change it: static (no cgo), the baseline instruction sets, and GOFLAGS
// replaced (-mod=readonly is the default; an empty GOFLAGS would let the go
// env file's value through).
func (o *Options) env(t Target) []string {
	return append(slices.Clip(o.Env),
		"GOOS="+t.OS, "GOARCH="+t.Arch, "CGO_ENABLED=0",
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=-mod=readonly")
}

func (o *Options) goCmd(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.Root
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// writeFile writes path through write, removing it again if write fails.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
