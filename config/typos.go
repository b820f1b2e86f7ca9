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

// maxGuessEdits is how many edits (letters missing, added or changed) a
// variable may be from a setting to be taken for it (README, Settings): a
// letter or an underscore missing, a plural, a letter swapped.
const maxGuessEdits = 2

// FindTypos returns the variables of environ (NAME=value entries, as
// os.Environ returns them; a bare NAME counts too) that look like a setting
// but are none, in environ's order: any other ENTRAPROXY_* name, a setting's
// name in other letter case, and names within two edits of a setting (a
// mistyped prefix). Each names the setting it most likely means: the one
// fewest edits away (Levenshtein distance, github.com/agnivade/levenshtein,
// ignoring letter case), when that is at most maxGuessEdits; a name farther
// from every setting gets no guess, since a far guess (ENTRAPROXY_FOO, did
// you mean ENTRAPROXY_SCOPE?) misleads more than none.
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
		if known || name == "" || !strings.HasPrefix(upper, settingPrefix) && bestDist > maxGuessEdits {
			continue
		}
		t := Typo{Var: name}
		if bestDist <= maxGuessEdits {
			t.Setting = best
		}
		typos = append(typos, t)
	}
	return typos
}
