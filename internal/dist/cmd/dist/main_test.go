package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// Bad invocations stop before anything is built, with exit status 2 and a
// message naming what to fix. (TestRelease in package dist builds for real.)
func TestUsage(t *testing.T) {
	epoch := func(v string) func(string) string {
		return func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		want   string
	}{
		{"no_version", []string{"-commit", "abc"}, epoch("1700000000"), "-version and -commit are required"},
		{"no_commit", []string{"-version", "v1"}, epoch("1700000000"), "-version and -commit are required"},
		{"no_epoch", []string{"-version", "v1", "-commit", "abc"}, epoch(""), `SOURCE_DATE_EPOCH ""`},
		{"bad_epoch", []string{"-version", "v1", "-commit", "abc"}, epoch("yesterday"), `SOURCE_DATE_EPOCH "yesterday"`},
		{"stray_argument", []string{"-version", "v1", "-commit", "abc", "linux"}, epoch("1700000000"), "unexpected arguments"},
		{"unknown_flag", []string{"-os", "linux"}, epoch("1700000000"), "not defined: -os"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, tc.getenv, nil, io.Discard, io.Discard)
			var usage usageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"-h"}, epoch(""), nil, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run(-h) = %v, want flag.ErrHelp (exit 0)", err)
	}
}
