package dist

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// notice is one license file to ship: its path in the archive, below the
// top-level directory, and on disk.
type notice struct{ name, src string }

// noticeKinds are the file names (before any extension or -suffix) that carry
// a license's terms or notices: MIT, BSD and Apache-2.0 all ask that binary
// redistributions reproduce them, and Apache-2.0 adds the NOTICE file.
var noticeKinds = []string{"LICENSE", "LICENCE", "COPYING", "NOTICE", "PATENTS"}

// isNotice reports whether a file name is a license or notice file:
// LICENSE, LICENSE.txt, LICENSE.md, LICENSE-MIT, NOTICE, COPYING.LESSER ...,
// in any letter case.
func isNotice(name string) bool {
	stem, _, _ := strings.Cut(strings.ToUpper(name), ".")
	for _, k := range noticeKinds {
		if stem == k || strings.HasPrefix(stem, k+"-") || strings.HasPrefix(stem, k+"_") {
			return true
		}
	}
	return false
}

// noticesIn returns the license files directly in dir, sorted.
func noticesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && isNotice(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// module is one module linked into the binary, with the directories of its
// packages that are.
type module struct {
	path, version, dir string
	pkgDirs            map[string]bool
}

// notices returns the license files a binary distribution of bin must carry,
// sorted by archive path:
//   - the project's own license files, at the top, when it has any;
//   - licenses/go/: Go's, whose runtime and standard library are in every
//     Go binary;
//   - licenses/MODULE/: every module linked into bin, the files in its root
//     and in the directories between a linked package and the root (where
//     code copied from elsewhere keeps its own license).
//
// The module list is go list's for the target, checked against the list the
// linker wrote into bin (debug/buildinfo), so it is what the binary holds. A
// module without any license file is an error: nothing is shipped that no
// one has looked at.
func (o *Options) notices(ctx context.Context, env []string, bin string) ([]notice, error) {
	var out []notice
	own, err := noticesIn(o.Root)
	if err != nil {
		return nil, err
	}
	for _, n := range own {
		out = append(out, notice{n, filepath.Join(o.Root, n)})
	}

	goroot, err := o.goCmd(ctx, env, "env", "GOROOT")
	if err != nil {
		return nil, err
	}
	gorootDir := strings.TrimSpace(string(goroot))
	goNotices, err := noticesIn(gorootDir)
	if err != nil {
		return nil, err
	}
	if len(goNotices) == 0 {
		return nil, fmt.Errorf("no LICENSE in the Go toolchain's GOROOT %s", gorootDir)
	}
	for _, n := range goNotices {
		out = append(out, notice{"licenses/go/" + n, filepath.Join(gorootDir, n)})
	}

	mods, err := o.linkedModules(ctx, env, bin)
	if err != nil {
		return nil, err
	}
	for _, m := range mods {
		dirs := map[string]bool{}
		for d := range m.pkgDirs {
			for ; ; d = filepath.Dir(d) {
				rel, err := filepath.Rel(m.dir, d)
				if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					return nil, fmt.Errorf("module %s: package directory %s is outside the module's %s", m.path, d, m.dir)
				}
				dirs[d] = true
				if rel == "." {
					break
				}
			}
		}
		before := len(out)
		for _, d := range slices.Sorted(maps.Keys(dirs)) {
			names, err := noticesIn(d)
			if err != nil {
				return nil, err
			}
			rel, _ := filepath.Rel(m.dir, d)
			for _, n := range names {
				out = append(out, notice{path.Join("licenses", m.path, filepath.ToSlash(rel), n), filepath.Join(d, n)})
			}
		}
		if len(out) == before {
			return nil, fmt.Errorf("module %s %s has no LICENSE, NOTICE or COPYING file in %s: find its license terms before shipping it", m.path, m.version, m.dir)
		}
	}
	slices.SortFunc(out, func(a, b notice) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// linkedModules returns the modules other than this one that bin links, from
// go list -deps for the target, after checking them against bin's build info.
func (o *Options) linkedModules(ctx context.Context, env []string, bin string) ([]*module, error) {
	format := `{{with .Module}}{{if not .Main}}{{.Path}}{{"\t"}}{{.Version}}{{"\t"}}{{.Dir}}{{"\t"}}{{$.Dir}}{{"\n"}}{{end}}{{end}}`
	list, err := o.goCmd(ctx, env, "list", "-deps", "-f", format, Main)
	if err != nil {
		return nil, err
	}
	byPath := map[string]*module{}
	for line := range strings.Lines(string(list)) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) != 4 || f[2] == "" {
			return nil, fmt.Errorf("go list -deps: unexpected line %q (is the module downloaded? go mod download)", line)
		}
		m := byPath[f[0]]
		if m == nil {
			m = &module{path: f[0], version: f[1], dir: f[2], pkgDirs: map[string]bool{}}
			byPath[f[0]] = m
		}
		m.pkgDirs[f[3]] = true
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read build info of %s: %w", bin, err)
	}
	linked := map[string]string{}
	for _, d := range bi.Deps {
		linked[d.Path] = d.Version
	}
	var errs []error
	for p, m := range byPath {
		if v, ok := linked[p]; !ok || v != m.version {
			errs = append(errs, fmt.Errorf("go list names %s %s, the binary links %q", p, m.version, v))
		}
	}
	for p, v := range linked {
		if byPath[p] == nil {
			errs = append(errs, fmt.Errorf("the binary links %s %s, which go list does not name", p, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("module lists disagree:\n%w", err)
	}
	mods := slices.Collect(maps.Values(byPath))
	slices.SortFunc(mods, func(a, b *module) int { return strings.Compare(a.path, b.path) })
	return mods, nil
}
