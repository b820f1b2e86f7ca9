package dist

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Relative links lead to the file at the release's commit; in-page links
// and absolute URLs stay.
func TestArchiveREADME(t *testing.T) {
	const repo, commit = "https://github.com/entraproxy/entraproxy", "0123456789abcdef0123456789abcdef01234567"
	in := "See [docs/RELIABILITY.md](docs/RELIABILITY.md) and [the table](e2e/README.md#what-the-app-reads), " +
		"[./BENCHMARKS.md](./BENCHMARKS.md), [Settings](#settings), [Go](https://go.dev/doc/) and ![logo](docs/logo.png).\n"
	want := "See [docs/RELIABILITY.md](" + repo + "/blob/" + commit + "/docs/RELIABILITY.md) and [the table](" + repo + "/blob/" + commit + "/e2e/README.md#what-the-app-reads), " +
		"[./BENCHMARKS.md](" + repo + "/blob/" + commit + "/BENCHMARKS.md), [Settings](#settings), [Go](https://go.dev/doc/) and ![logo](" + repo + "/blob/" + commit + "/docs/logo.png).\n"
	if got := string(archiveREADME([]byte(in), repo, commit)); got != want {
		t.Errorf("archiveREADME =\n%s\nwant\n%s", got, want)
	}
}

// The README the archives carry is whole without the repository: every
// link is in-page or absolute, and each one pointed at the repository
// names a file that is there. The repository's README links to files an
// archive lacks (docs/RELIABILITY.md, doctor/README.md, e2e/README.md).
func TestArchiveREADMELinksLeadSomewhere(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repositoryURL(root)
	if err != nil {
		t.Fatal(err)
	}
	if repo != "https://github.com/entraproxy/entraproxy" {
		t.Errorf("repositoryURL = %q, want the module path's https URL", repo)
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	rewritten := 0
	for _, m := range regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(string(archiveREADME(readme, repo, commit)), -1) {
		target := m[1]
		path, inRepo := strings.CutPrefix(target, repo+"/blob/"+commit+"/")
		switch {
		case inRepo:
			rewritten++
			path, _, _ = strings.Cut(path, "#")
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(path))); err != nil {
				t.Errorf("link %s: %s is not in the repository", target, path)
			}
		case strings.HasPrefix(target, "#"), strings.HasPrefix(target, "https://"), strings.HasPrefix(target, "http://"):
		default:
			t.Errorf("link %q in the archive's README leads to no file an archive holds", target)
		}
	}
	if rewritten == 0 {
		t.Error("no link pointed at the repository: the README links to docs/ and e2e/, which the archives lack")
	}
}
