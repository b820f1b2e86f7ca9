package config

import (
	"strings"

	"github.com/agnivade/levenshtein"
)

// Typo is an environment variable that looks like a setting but is none:
// caarlos0/env reads only the exact names, so ENTRAPROXY_LISTN would
// otherwise leave ENTRAPROXY_LISTEN at its default without a word.
type Typo struct {
	// Var is the variable as it is set.
	Var string
	// Setting is the setting it most likely means; empty when none is
	// close.
	Setting string
}

func (t Typo) String() string {
	if t.Setting == "" {
		return t.Var + " is not an entraproxy setting (entraproxy -h lists them)"
	}
	return t.Var + " is not an entraproxy setting; did you mean " + t.Setting + "?"
}

// settingPrefix starts every setting's name.
const settingPrefix = "ENTRAPROXY_"

// FindTypos returns the variables of environ (NAME=value entries, as
// os.Environ returns them; a bare NAME counts too) that look like a setting
// but are none, in environ's order: any other ENTRAPROXY_* name, a setting's
// name in other letter case, and names within two edits of a setting (a
// mistyped prefix). Each names the setting it most likely means: the one
// fewest edits away (Levenshtein distance, github.com/agnivade/levenshtein,
// ignoring letter case), when that is at most a quarter of the setting's
// length, and at least two.
func FindTypos(environ []string) []Typo {
	settings := Settings()
	var typos []Typo
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		best, bestDist := "", -1
		known := false
		for _, s := range settings {
			if s.Var == name {
				known = true
				break
			}
			if d := levenshtein.ComputeDistance(upper, s.Var); bestDist < 0 || d < bestDist {
				best, bestDist = s.Var, d
			}
		}
		if known || name == "" || !strings.HasPrefix(upper, settingPrefix) && bestDist > 2 {
			continue
		}
		t := Typo{Var: name}
		if bestDist <= max(2, len(best)/4) {
			t.Setting = best
		}
		typos = append(typos, t)
	}
	return typos
}
