// Command dist writes entraproxy's release archives and their SHA256SUMS into
// a directory (package dist). `make dist` runs it from the repository root:
//
//	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
//	  go run ./internal/dist/cmd/dist -version VERSION -commit HASH [-out dist]
//
// SOURCE_DATE_EPOCH (Unix seconds) dates every archive entry
// (https://reproducible-builds.org/specs/source-date-epoch/). It prints the
// toolchain, one line per archive with its size in bytes, and the checksum
// list. Exit status: 0 done, 2 bad flags or settings, 1 when a build fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	"github.com/entraproxy/entraproxy/internal/dist"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Environ(), os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "version to stamp and to name the archives, e.g. v1.2.3 (required)")
	commit := fs.String("commit", "", "commit hash to stamp (required)")
	out := fs.String("out", "dist", "directory for the archives and SHA256SUMS")
	root := fs.String("root", ".", "the repository root")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if *version == "" || *commit == "" {
		return usageError{errors.New("-version and -commit are required (make dist passes git describe and git rev-parse HEAD)")}
	}
	epoch := getenv("SOURCE_DATE_EPOCH")
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return usageError{fmt.Errorf("SOURCE_DATE_EPOCH %q: want the commit's time in Unix seconds (git log -1 --format=%%ct); make dist sets it", epoch)}
	}
	archives, err := dist.Build(ctx, dist.Options{
		Root: *root, Out: *out, Version: *version, Commit: *commit,
		Time: time.Unix(secs, 0).UTC(), Env: environ, Log: stderr,
	})
	if err != nil {
		return err
	}
	for _, a := range archives {
		fmt.Fprintf(stdout, "%10d  %s\n", a.Size, filepath.Join(*out, a.Name))
	}
	sums, err := os.ReadFile(filepath.Join(*out, dist.SumsFile))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s:\n%s", filepath.Join(*out, dist.SumsFile), sums)
	return nil
}
