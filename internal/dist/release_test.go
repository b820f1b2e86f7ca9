package dist

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Building six binaries takes minutes with an empty build cache (a fresh CI
// machine), so the release test runs only when asked: make test runs it as
// `make dist-check`.
var release = flag.Bool("release", false, "build the six release archives twice and check them (TestRelease)")

// Distinctive values, so a check cannot pass by matching something else.
const (
	testVersion = "v0.0.0-disttest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

var testTime = time.Date(2025, 6, 1, 12, 30, 45, 0, time.UTC)

// TestRelease builds the release as make dist does, checks every archive
// against the README's description and every binary's header against its
// target, runs the host's binary, and builds everything a second time from a
// copy of the source tree elsewhere: the two must be byte-identical.
func TestRelease(t *testing.T) {
	if !*release {
		t.Skip("builds six binaries; run with -release (make dist-check, part of make test)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Twelve cross builds from a cold cache on a loaded 2-core machine take
	// minutes: the only bound is the test binary's own -timeout, less a
	// margin to say which build hung.
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Hour)
	}
	ctx, cancel := context.WithDeadline(t.Context(), deadline.Add(-30*time.Second))
	defer cancel()
	build := func(root, out string) []Archive {
		t.Helper()
		start := time.Now()
		archives, err := Build(ctx, Options{
			Root: root, Out: out, Version: testVersion, Commit: testCommit, Time: testTime, Env: os.Environ(),
		})
		if err != nil {
			t.Fatalf("Build from %s: %v", root, err)
		}
		t.Logf("built %d archives from %s in %v", len(archives), root, time.Since(start).Round(time.Second))
		return archives
	}

	out := t.TempDir()
	archives := build(root, out)
	if len(archives) != len(Targets()) {
		t.Fatalf("Build wrote %d archives, want %d", len(archives), len(Targets()))
	}
	checkSums(t, out, archives)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repositoryURL(root)
	if err != nil {
		t.Fatal(err)
	}
	listing := readmeListing(t, string(readme))
	readme = archiveREADME(readme, repo, testCommit)
	for _, a := range archives {
		t.Run(a.Target.OS+"_"+a.Target.Arch, func(t *testing.T) {
			members := readArchive(t, filepath.Join(out, a.Name))
			bin := checkContents(t, a.Target, members, listing, readme)
			if bin == nil {
				return
			}
			checkBinary(t, a.Target, bin)
			if a.Target.OS == runtime.GOOS && a.Target.Arch == runtime.GOARCH {
				checkVersion(t, bin)
			}
		})
	}

	// The second build: another directory, another output directory, the
	// same commit. -trimpath keeps the paths out of the binaries.
	copyRoot := filepath.Join(t.TempDir(), "elsewhere", "entraproxy")
	copyTree(t, root, copyRoot)
	out2 := t.TempDir()
	build(copyRoot, out2)
	first, _ := os.ReadFile(filepath.Join(out, SumsFile))
	second, err := os.ReadFile(filepath.Join(out2, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("two builds of the same tree differ:\n%s\n%s", first, second)
	}
}

// checkSums checks SHA256SUMS against the archives on disk: one line per
// archive, sorted, in sha256sum's format.
func checkSums(t *testing.T, out string, archives []Archive) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		sum, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "  ")
		if !ok || len(sum) != 64 {
			t.Errorf("%s line %q: want \"HEX  NAME\"", SumsFile, line)
			continue
		}
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s names %s: %v", SumsFile, name, err)
			continue
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(data)); got != sum {
			t.Errorf("%s: sha256 %s, %s says %s", name, got, SumsFile, sum)
		}
		names = append(names, name)
	}
	var want []string
	for _, a := range archives {
		want = append(want, a.Name)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("%s lists %q, want %q (sorted)", SumsFile, names, want)
	}
}

// listingLine is one line of the README's archive listing: a path below the
// top-level directory (a trailing / for a directory and all below it), with
// the placeholders VERSION, OS, ARCH and MODULE.
type listingLine struct{ pattern, text string }

// readmeListing returns the lines between the dist-contents markers in the
// README: the top-level directory first, then what it holds.
func readmeListing(t *testing.T, readme string) []listingLine {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- dist-contents:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- dist-contents:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- dist-contents:begin --> ... <!-- dist-contents:end --> block")
	}
	var lines []listingLine
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "```") {
			continue
		}
		f := strings.Fields(line)
		lines = append(lines, listingLine{pattern: f[0], text: line})
	}
	if len(lines) < 2 || lines[0].pattern != "entraproxy_VERSION_OS_ARCH/" {
		t.Fatalf("README listing %q: want entraproxy_VERSION_OS_ARCH/ and then its contents", lines)
	}
	return lines
}

// checkContents checks an archive's members against the README listing:
// everything under one top-level directory, every file described by a line,
// every line (each module, for MODULE) matching a file, the README equal to
// readme (the repository's, as archiveREADME rewrites it), entries dated
// testTime. It returns the binary.
func checkContents(t *testing.T, target Target, members []member, listing []listingLine, readme []byte) []byte {
	t.Helper()
	top := strings.NewReplacer("VERSION", testVersion, "OS", target.OS, "ARCH", target.Arch).Replace(listing[0].pattern)
	if top != Dir(testVersion, target)+"/" {
		t.Fatalf("README's top-level directory %q is not what Build writes, %q", top, Dir(testVersion, target)+"/")
	}
	var bin []byte
	files := map[string][]byte{}
	for _, m := range members {
		if !m.mtime.Equal(testTime) {
			t.Errorf("%s: time %v, want %v", m.name, m.mtime, testTime)
		}
		rel, ok := strings.CutPrefix(m.name, top)
		if !ok && m.name != top {
			t.Errorf("%s is outside %s", m.name, top)
			continue
		}
		if m.mode.IsDir() || rel == "" {
			continue
		}
		files[rel] = m.data
		if rel == target.Exe() {
			bin = m.data
			if m.mode.Perm() != 0o755 {
				t.Errorf("%s: mode %v, want -rwxr-xr-x", m.name, m.mode)
			}
		}
	}
	if !bytes.Equal(files["README.md"], readme) {
		t.Error("README.md in the archive differs from the repository's with its links pointed at the repository (archiveREADME)")
	}

	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("%s: no binary or no build info: %v", target.Exe(), err)
	}
	covered := map[string]bool{}
	for _, l := range listing[1:] {
		patterns := []string{l.pattern}
		if l.pattern == "entraproxy" {
			patterns = []string{target.Exe()} // the listing says: entraproxy.exe on Windows
		}
		if strings.Contains(l.pattern, "MODULE") {
			patterns = nil
			for _, d := range bi.Deps {
				patterns = append(patterns, strings.Replace(l.pattern, "MODULE", d.Path, 1))
			}
		}
		for _, p := range patterns {
			n := 0
			for rel := range files {
				if rel == p || strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p) {
					covered[rel] = true
					n++
				}
			}
			if n == 0 {
				t.Errorf("README says the archive holds %s (%q); it does not", p, strings.TrimSpace(l.text))
			}
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if !covered[rel] {
			t.Errorf("the archive holds %s, which the README's listing does not describe", rel)
		}
	}
	return bin
}

// lcCodeSignature is Mach-O's LC_CODE_SIGNATURE load command
// (<mach-o/loader.h>). macOS on Apple silicon runs no arm64 binary without a
// signature; Go's linker signs ad hoc (https://go.dev/doc/go1.16#darwin).
const lcCodeSignature = 0x1d

// checkBinary checks the format and architecture from the binary's header,
// the build settings Go recorded, and that the version and commit were
// stamped in.
func checkBinary(t *testing.T, target Target, bin []byte) {
	t.Helper()
	r := bytes.NewReader(bin)
	switch target.OS {
	case "linux":
		f, err := elf.NewFile(r)
		if err != nil {
			t.Fatalf("not ELF: %v", err)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[target.Arch]
		if f.Machine != want || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
			t.Errorf("ELF %v %v %v, want %v ELFCLASS64 ET_EXEC", f.Machine, f.Class, f.Type, want)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("ELF has a %v program header: dynamically linked, want static", p.Type)
			}
		}
	case "darwin":
		f, err := macho.NewFile(r)
		if err != nil {
			t.Fatalf("not Mach-O: %v", err)
		}
		want := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[target.Arch]
		if f.Cpu != want || f.Type != macho.TypeExec {
			t.Errorf("Mach-O %v %v, want %v %v", f.Cpu, f.Type, want, macho.TypeExec)
		}
		signed := false
		for _, l := range f.Loads {
			if raw := l.Raw(); len(raw) >= 4 && f.ByteOrder.Uint32(raw) == lcCodeSignature {
				signed = true
			}
		}
		if target.Arch == "arm64" && !signed {
			t.Error("Mach-O arm64 without LC_CODE_SIGNATURE: macOS would refuse to run it")
		}
	case "windows":
		f, err := pe.NewFile(r)
		if err != nil {
			t.Fatalf("not PE: %v", err)
		}
		want := map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64}[target.Arch]
		if f.Machine != want || f.Characteristics&pe.IMAGE_FILE_EXECUTABLE_IMAGE == 0 {
			t.Errorf("PE machine %#x characteristics %#x, want %#x and IMAGE_FILE_EXECUTABLE_IMAGE", f.Machine, f.Characteristics, want)
		}
		// A console program: it gets Ctrl+C (os.Interrupt) and a console
		// for its logs; a GUI-subsystem one would get neither.
		oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
		if !ok || oh.Subsystem != pe.IMAGE_SUBSYSTEM_WINDOWS_CUI {
			t.Errorf("PE optional header %T subsystem %v, want PE32+ IMAGE_SUBSYSTEM_WINDOWS_CUI", f.OptionalHeader, subsystem(oh))
		}
	default:
		t.Fatalf("no header check for %s", target.OS)
	}

	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
		if strings.HasPrefix(s.Key, "vcs") {
			t.Errorf("build setting %s=%s: want no VCS stamp (-buildvcs=false), the commit comes from -ldflags", s.Key, s.Value)
		}
	}
	for k, want := range map[string]string{"GOOS": target.OS, "GOARCH": target.Arch, "CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], want)
		}
	}
	for _, s := range []string{testVersion, testCommit} {
		if !bytes.Contains(bin, []byte(s)) {
			t.Errorf("the binary does not hold %q: -X main.version / main.commit did not stamp it", s)
		}
	}
}

func subsystem(oh *pe.OptionalHeader64) any {
	if oh == nil {
		return nil
	}
	return oh.Subsystem
}

// checkVersion runs the host's binary: the stamped version and commit are
// what `entraproxy version` prints.
func checkVersion(t *testing.T, bin []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entraproxy")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a hang guard
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = []string{} // without ENTRAPROXY_UPSTREAM a binary that tried to serve would exit 2, not hang
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("entraproxy version: %v\n%s", err, b)
	}
	want := fmt.Sprintf("entraproxy %s (commit %s, ", testVersion, testCommit)
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("entraproxy version printed %q, want it to start %q", b, want)
	}
}

// copyTree copies the regular files under src to dst, leaving out version
// control, installed packages and build output.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() && rel != "." && (strings.HasPrefix(d.Name(), ".") || slices.Contains([]string{"node_modules", "bin", "dist"}, d.Name())) {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
