package dist

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// mdLink matches the target of an inline Markdown link or image,
// "](target)"; the README uses no reference-style links.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// archiveREADME is the README as the archives carry it: the repository's,
// with every relative link (docs/RELIABILITY.md, doctor/README.md,
// e2e/README.md#section ...), whose file an archive does not hold, pointed
// at that file in the repository at the release's commit,
// REPO/blob/COMMIT/PATH, so that each link of the archive's README leads
// somewhere and shows the text of the very release. In-page links
// (#settings) and absolute URLs stay as they are.
func archiveREADME(readme []byte, repoURL, commit string) []byte {
	return mdLink.ReplaceAllFunc(readme, func(m []byte) []byte {
		target := string(m[2 : len(m)-1])
		if strings.HasPrefix(target, "#") || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			return m
		}
		return []byte("](" + repoURL + "/blob/" + commit + "/" + strings.TrimPrefix(target, "./") + ")")
	})
}

// repositoryURL is the web address of the repository at root: its module
// path (go.mod), which is where `go install` fetches it from, as an https
// URL.
func repositoryURL(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if path, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return "https://" + strings.Trim(strings.TrimSpace(path), `"`), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", filepath.Join(root, "go.mod"))
}
