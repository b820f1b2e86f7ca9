package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the settings table in README.md")

// settingsTable renders Settings as the README's markdown table.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	esc := strings.NewReplacer("<", "&lt;", ">", "&gt;", "|", `\|`)
	for _, s := range Settings() {
		def := "`" + s.Default + "`"
		switch s.Default {
		case "":
			def = "(empty)"
		case "(required)":
			def = s.Default
		}
		b.WriteString("| `" + s.Var + "` | " + def + " | " + esc.Replace(s.Help) + " |\n")
	}
	return b.String()
}

// The README's settings table comes from the same struct tags as -h and the
// loader; this test keeps it so (go test ./config -update rewrites it).
func TestREADMESettingsTable(t *testing.T) {
	const begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", begin, end)
	}
	got, want := readme[i+len(begin):j], settingsTable()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile("../README.md", []byte(readme[:i+len(begin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md settings table differs from config.Settings(); run go test ./config -update\ngot:\n%s\nwant:\n%s", got, want)
}
