package buildcheck

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/config"
)

// What `docker build --build-arg VERSION=... --build-arg COMMIT=...` would pass;
// distinctive, so the version check cannot match by accident.
const (
	testVersion = "v0.0.0-buildcheck"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

func TestDockerfileShape(t *testing.T) {
	df := parseDockerfile(t)
	if len(df.stages) < 2 {
		t.Fatalf("stages = %d, want a build stage and a final stage", len(df.stages))
	}
	build, final := df.stage(t, "build"), df.stages[len(df.stages)-1]
	if !strings.HasPrefix(build.from, "golang:1.26") {
		t.Errorf("build stage FROM %q, want golang:1.26...", build.from)
	}
	if want := "gcr.io/distroless/static-debian12:nonroot"; final.from != want {
		t.Errorf("final stage FROM %q, want %q", final.from, want)
	}
	if got := final.last("USER"); got != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532", got)
	}
	var entry []string
	if err := json.Unmarshal([]byte(final.last("ENTRYPOINT")), &entry); err != nil || !slices.Equal(entry, []string{"/entraproxy"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/entraproxy\"] (exec form: no shell in distroless)", final.last("ENTRYPOINT"))
	}
	if got := strings.Fields(final.last("EXPOSE")); !slices.Equal(got, []string{"8080", "9090"}) {
		t.Errorf("EXPOSE %q, want 8080 9090", got)
	}
	env := final.env(t)
	for _, k := range []string{"ENTRAPROXY_LISTEN", "ENTRAPROXY_ADMIN_LISTEN"} {
		if env[k] == "" {
			t.Errorf("final stage ENV lacks %s", k)
		}
	}

	gb := build.goBuild(t, nil)
	if gb.env["CGO_ENABLED"] != "0" {
		t.Errorf("go build CGO_ENABLED = %q, want 0 (static binary for distroless/static)", gb.env["CGO_ENABLED"])
	}
	if !slices.Contains(gb.args, "-trimpath") {
		t.Errorf("go build args %q lack -trimpath", gb.args)
	}
	copied := false
	for _, c := range final.all("COPY") {
		w := strings.Fields(c)
		if len(w) == 3 && w[0] == "--from=build" && w[1] == gb.out && w[2] == entry[0] {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage has no COPY --from=build %s %s", gb.out, "/entraproxy")
	}
	for _, a := range []string{"TARGETOS", "TARGETARCH", "VERSION", "COMMIT"} {
		if _, ok := build.args(t)[a]; !ok {
			t.Errorf("build stage lacks ARG %s", a)
		}
	}
}

// The image's defaults must make the user choose how the non-loopback listener
// is protected: alone they refuse to start; either documented choice fixes it.
func TestImageEnvRequiresAChoice(t *testing.T) {
	image := parseDockerfile(t).stages[1].env(t)
	upstream := map[string]string{"ENTRAPROXY_UPSTREAM": "https://example.cognitiveservices.azure.com"}
	_, err := loadConfig(image, upstream)
	if err == nil || !strings.Contains(err.Error(), "ENTRAPROXY_LISTEN") {
		t.Errorf("image defaults: config.Load = %v, want a refusal naming ENTRAPROXY_LISTEN", err)
	}
	for _, choice := range []map[string]string{
		{"ENTRAPROXY_ALLOW_UNAUTHENTICATED": "true"},
		{"ENTRAPROXY_INBOUND_KEYS": "k1"},
		{"ENTRAPROXY_LISTEN": "127.0.0.1:8080"},
	} {
		if _, err := loadConfig(image, upstream, choice); err != nil {
			t.Errorf("image defaults + %v: config.Load = %v, want nil", choice, err)
		}
	}
}

// TestDockerfileBuild runs the Dockerfile's go build command, as written, for
// each architecture the image is published for.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice; skipped with -short")
	}
	root := repoRoot(t)
	df := parseDockerfile(t)
	build := df.stage(t, "build")
	checkLdflagsTargets(t, root, build.goBuild(t, nil))

	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			gb := build.goBuild(t, map[string]string{
				"TARGETOS": "linux", "TARGETARCH": arch, "VERSION": testVersion, "COMMIT": testCommit,
			})
			out := filepath.Join(t.TempDir(), "entraproxy")
			args := slices.Clone(gb.args)
			args[slices.Index(args, "-o")+1] = out
			// A cross build from a cold cache on a loaded 2-core machine
			// takes minutes: the only bound is the test binary's own
			// -timeout, less a margin to say which build hung.
			deadline, ok := t.Deadline()
			if !ok {
				deadline = time.Now().Add(time.Hour)
			}
			ctx, cancel := context.WithDeadline(t.Context(), deadline.Add(-30*time.Second))
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = root // WORKDIR /src holds the repository (COPY . .)
			cmd.Env = os.Environ()
			for k, v := range gb.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s go %s: %v\n%s", envString(gb.env), strings.Join(args, " "), err, b)
			}
			problems, err := staticProblems(out, machines[arch])
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s: %s; it will not run on distroless/static", out, p)
			}
			checkBuildSettings(t, out, arch)
			if runtime.GOOS == "linux" && runtime.GOARCH == arch {
				checkVersion(t, out)
			}
		})
	}
}

// staticProblems says why the ELF file at path would not run on
// distroless/static for machine; none means it would.
func staticProblems(path string, machine elf.Machine) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var problems []string
	if f.Machine != machine {
		problems = append(problems, fmt.Sprintf("ELF machine is %v, want %v", f.Machine, machine))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			problems = append(problems, fmt.Sprintf("has a %v program header: dynamically linked", p.Type))
		}
	}
	if f.Section(".dynamic") != nil {
		if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
			problems = append(problems, fmt.Sprintf("needs shared libraries %q (%v)", libs, err))
		}
	}
	return problems, nil
}

func checkBuildSettings(t *testing.T, path, arch string) {
	t.Helper()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("read build info: %v", err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": arch, "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], want)
		}
	}
	// -ldflags is not recorded with -trimpath (it may hold paths); checkVersion
	// covers it.
}

// checkVersion runs the binary's version command: the proof that -X reached
// real variables (the linker silently ignores -X for a name that does not exist).
func checkVersion(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a hang guard
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = []string{} // no ENTRAPROXY_UPSTREAM: a binary that tried to serve would exit 2, not hang
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("entraproxy version: %v; output:\n%s", err, b)
	}
	for _, want := range []string{testVersion, testCommit} {
		if !strings.Contains(string(b), want) {
			t.Errorf("entraproxy version printed %q, want it to contain %q", b, want)
		}
	}
}

// checkLdflagsTargets checks that each -X main.NAME in the Dockerfile names a
// package-level string variable of cmd/entraproxy that -X can set (declared
// without an initializer, or initialized to a string literal).
func checkLdflagsTargets(t *testing.T, root string, gb goBuild) {
	t.Helper()
	i := slices.Index(gb.args, "-ldflags")
	if i < 0 || i+1 >= len(gb.args) {
		t.Fatalf("go build args %q have no -ldflags", gb.args)
	}
	var targets []string
	flags := strings.Fields(gb.args[i+1])
	for j, f := range flags {
		if f == "-X" && j+1 < len(flags) {
			name, _, _ := strings.Cut(flags[j+1], "=")
			targets = append(targets, name)
		}
	}
	if !slices.Contains(targets, "main.version") || !slices.Contains(targets, "main.commit") {
		t.Errorf("-ldflags -X targets = %q, want main.version and main.commit", targets)
	}

	settable, err := settableStrings(filepath.Join(root, "cmd", "entraproxy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		if !settable[target] {
			t.Errorf("-X %s: cmd/entraproxy declares no package-level string variable %s that -X can set", target, strings.TrimPrefix(target, "main."))
		}
	}
}

// settableStrings returns "main.NAME" for every package-level variable in the
// non-test Go files of dir, true for those -X can set: type string, and no
// initializer or a string literal one.
func settableStrings(dir string) (map[string]bool, error) {
	settable := map[string]bool{}
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for k, name := range vs.Names {
					ok := false
					switch typ, _ := vs.Type.(*ast.Ident); {
					case typ != nil && typ.Name == "string":
						ok = len(vs.Values) == 0 || isStringLit(vs.Values[k])
					case vs.Type == nil && len(vs.Values) > k:
						ok = isStringLit(vs.Values[k])
					}
					settable[f.Name.Name+"."+name.Name] = ok
				}
			}
		}
	}
	return settable, nil
}

func isStringLit(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING
}

// --- a small Dockerfile reader: enough for this repository's Dockerfile ---

type dockerfile struct{ stages []*stage }

type stage struct {
	from, name string
	instrs     [][2]string // instruction (upper case), arguments
}

func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := &dockerfile{}
	var logical strings.Builder
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			logical.WriteString(cont + " ")
			continue
		}
		logical.WriteString(line)
		instr, args, _ := strings.Cut(strings.TrimSpace(logical.String()), " ")
		logical.Reset()
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		if instr == "FROM" {
			s := &stage{}
			w := strings.Fields(args)
			w = slices.DeleteFunc(w, func(s string) bool { return strings.HasPrefix(s, "--") })
			s.from = w[0]
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				s.name = w[2]
			}
			df.stages = append(df.stages, s)
			continue
		}
		if len(df.stages) == 0 {
			if instr != "ARG" {
				t.Fatalf("Dockerfile: %s before FROM", instr)
			}
			continue
		}
		s := df.stages[len(df.stages)-1]
		s.instrs = append(s.instrs, [2]string{instr, args})
	}
	return df
}

func (df *dockerfile) stage(t *testing.T, name string) *stage {
	t.Helper()
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return nil
}

func (s *stage) all(instr string) []string {
	var out []string
	for _, in := range s.instrs {
		if in[0] == instr {
			out = append(out, in[1])
		}
	}
	return out
}

func (s *stage) last(instr string) string {
	all := s.all(instr)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// args returns the stage's ARG names with their defaults ("" when none).
func (s *stage) args(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range s.all("ARG") {
		words, err := shellWords(a)
		if err != nil {
			t.Fatalf("ARG %s: %v", a, err)
		}
		for _, w := range words {
			k, v, _ := strings.Cut(w, "=")
			out[k] = v
		}
	}
	return out
}

// env returns the stage's ENV settings (key=value form).
func (s *stage) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range s.all("ENV") {
		words, err := shellWords(e)
		if err != nil {
			t.Fatalf("ENV %s: %v", e, err)
		}
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				t.Fatalf("ENV %s: use the key=value form", e)
			}
			out[k] = v
		}
	}
	return out
}

type goBuild struct {
	env  map[string]string // the VAR=value prefix
	args []string          // after "go"
	out  string            // the -o path
}

// goBuild finds the one RUN that calls go build and expands it with the
// stage's ARG defaults overridden by set (as --build-arg and buildx would).
func (s *stage) goBuild(t *testing.T, set map[string]string) goBuild {
	t.Helper()
	var run string
	for _, r := range s.all("RUN") {
		if strings.Contains(r, "go build") {
			if run != "" {
				t.Fatal("Dockerfile: more than one RUN calls go build")
			}
			run = r
		}
	}
	if run == "" {
		t.Fatal("Dockerfile: no RUN calls go build")
	}
	if strings.HasPrefix(run, "[") || strings.ContainsAny(run, ";&|`") || strings.Contains(run, "$(") {
		t.Fatalf("RUN %s: keep the build one plain shell command (VAR=value... go build ...) so this test can run it", run)
	}
	vars := s.args(t)
	for k, v := range set {
		vars[k] = v
	}
	var undeclared []string
	expanded := os.Expand(run, func(k string) string {
		v, ok := vars[k]
		if !ok {
			undeclared = append(undeclared, k)
		}
		return v
	})
	if len(undeclared) > 0 {
		t.Fatalf("RUN %s: uses %q, not declared by ARG in this stage", run, undeclared)
	}
	words, err := shellWords(expanded)
	if err != nil {
		t.Fatalf("RUN %s: %v", run, err)
	}
	for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=..., --network=...
		words = words[1:]
	}
	gb := goBuild{env: map[string]string{}}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(words[0], "=")
		gb.env[k] = v
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("RUN %s: want VAR=value... go build ...", run)
	}
	gb.args = words[1:]
	i := slices.Index(gb.args, "-o")
	if i < 0 || i+1 >= len(gb.args) {
		t.Fatalf("RUN %s: no -o", run)
	}
	gb.out = gb.args[i+1]
	return gb
}

// shellWords splits s as a POSIX shell would split a simple command without
// expansions: whitespace separates words; '...' and "..." group; backslash escapes.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated '")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated "`)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`A=1 go build -ldflags "-s -w -X main.v=1" -o /out/x ./cmd/x`, []string{"A=1", "go", "build", "-ldflags", "-s -w -X main.v=1", "-o", "/out/x", "./cmd/x"}},
		{`'a b' c\ d "e\"f"`, []string{"a b", "c d", `e"f`}},
		{`  `, nil},
	}
	for _, tc := range tests {
		got, err := shellWords(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`"open`, `'open`} {
		if _, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q) = nil error, want one", bad)
		}
	}
}

func envString(env map[string]string) string {
	var parts []string
	for k, v := range env {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// loadConfig runs config.Load on the union of envs, later ones winning, the
// way the image's ENV is overridden by a deployment's environment.
func loadConfig(envs ...map[string]string) (*config.Config, error) {
	merged := map[string]string{}
	for _, e := range envs {
		for k, v := range e {
			merged[k] = v
		}
	}
	return config.Load(func(k string) string { return merged[k] })
}

func TestSettableStrings(t *testing.T) {
	dir := t.TempDir()
	src := `package main

var (
	version        = "dev"
	commit  string
	count   = 1
	derived = version + "x"
	typed   string = "ok"
	other   int
)

var a, b string
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x_test.go"), []byte("package main\nvar testonly string\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := settableStrings(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"main.version": true, "main.commit": true, "main.count": false, "main.derived": false,
		"main.typed": true, "main.other": false, "main.a": true, "main.b": true}
	if len(got) != len(want) {
		t.Errorf("settableStrings = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("settableStrings[%s] = %v, want %v", k, got[k], v)
		}
	}
}

// The static check must be able to fail: a dynamically linked system binary.
func TestStaticProblemsSeesDynamicBinary(t *testing.T) {
	path, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls on PATH")
	}
	problems, err := staticProblems(path, elf.EM_X86_64)
	if err != nil {
		t.Skipf("%s is not ELF: %v", path, err)
	}
	if len(problems) == 0 {
		t.Skipf("%s is statically linked here; nothing to show", path)
	}
	if !strings.Contains(strings.Join(problems, "; "), "dynamically linked") {
		t.Errorf("staticProblems(%s) = %q, want a dynamic-linking problem", path, problems)
	}
}
