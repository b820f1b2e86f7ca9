package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/entraproxy/entraproxy/tokens"
)

const redacted = "[redacted]"

// scrub removes the token, keys and anything token-shaped (tokens.Redact:
// JWTs, whatever follows an access_token field) from every string of rep.
// The checks never put them there; this is the one place that guarantees
// it, whatever a dependency's error message or an upstream's answer quotes.
func (d *doctor) scrub(rep *Report) {
	clean := func(s *string) {
		for _, secret := range d.secrets {
			if len(secret) >= 8 {
				*s = strings.ReplaceAll(*s, secret, redacted)
			}
		}
		*s = tokens.Redact(*s)
	}
	cleanAll := func(ss []string) {
		for i := range ss {
			clean(&ss[i])
		}
	}
	clean(&rep.Upstream)
	for i := range rep.Checks {
		c := &rep.Checks[i]
		clean(&c.Summary)
		cleanAll(c.Evidence)
		cleanAll(c.Fix)
		for j := range c.Probes {
			clean(&c.Probes[j].Detail)
			clean(&c.Probes[j].Code)
			clean(&c.Probes[j].Target)
		}
	}
	clean(&rep.Summary.Message)
	for i := range rep.Summary.Settings {
		s := &rep.Summary.Settings[i]
		clean(&s.Value)
		clean(&s.Why)
	}
}

// WriteJSON writes rep as one indented JSON document, for scripts.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write doctor report: %w", err)
	}
	return nil
}

// ANSI colours, used only when the output is a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// WriteText writes rep for a person at a terminal; color adds ANSI colours.
func WriteText(w io.Writer, rep *Report, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	label := func(v Verdict) string {
		switch v {
		case Pass:
			return paint(ansiGreen, "PASS")
		case Warn:
			return paint(ansiYellow, "WARN")
		case Fail:
			return paint(ansiRed, "FAIL")
		}
		return paint(ansiDim, "SKIP")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "entraproxy doctor: %s\n\n", orNone(rep.Upstream))
	const indent = "        "
	for i, c := range rep.Checks {
		fmt.Fprintf(&b, "%s  %d. %s %s\n", label(c.Verdict), i+1, paint(ansiBold, fmt.Sprintf("%-14s", c.Title)), c.Summary)
		for _, e := range c.Evidence {
			fmt.Fprintf(&b, "%s%s\n", indent, paint(ansiDim, e))
		}
		for _, f := range c.Fix {
			fmt.Fprintf(&b, "%s%s %s\n", indent, paint(ansiYellow, "fix:"), f)
		}
	}
	s := rep.Summary
	fmt.Fprintf(&b, "\n%s  %s\n", label(s.Verdict), s.Message)
	fmt.Fprintf(&b, "      %d passed, %d warned, %d failed, %d skipped; exit code %d\n", s.Passed, s.Warned, s.Failed, s.Skipped, s.ExitCode)
	if len(s.Settings) > 0 {
		b.WriteString("\nSettings to use:\n")
		for _, st := range s.Settings {
			fmt.Fprintf(&b, "  %s=%s\n      %s\n", st.Var, st.Value, paint(ansiDim, st.Why))
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write doctor report: %w", err)
	}
	return nil
}
