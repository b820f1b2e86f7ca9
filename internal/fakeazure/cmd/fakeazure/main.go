// Command fakeazure runs the fake Azure of package fakeazure for the
// JavaScript end-to-end suite and the demo. It prints one JSON line with its
// addresses on stdout, then serves until SIGINT or SIGTERM and exits 0.
//
//	fakeazure [-auth both|bearer|aad] [-tts-auth bearer|aad|both] [-resource-id ID] [-token-lifetime 1h]
//	          [-redirect] [-redirect-status 301] [-redirect-rest] [-phrase TEXT] [-sse-gap 200ms]
//	          [-chat-delay 0s]
//	          [-az-dir DIR] [-tls-ca FILE] [-v]
//
// Exit status: 0 after a signal, 2 for bad flags, 1 when it cannot start.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "fakeazure:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "fakeazure:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// ready is the JSON line printed once the fake listens.
type ready struct {
	URL              string `json:"url"`
	CustomHost       string `json:"custom_host"`
	Regional         string `json:"regional"`
	IdentityEndpoint string `json:"identity_endpoint"`
	IdentityHeader   string `json:"identity_header"`
	AZDir            string `json:"az_dir,omitempty"`
	TLSURL           string `json:"tls_url,omitempty"`
	CAFile           string `json:"ca_file,omitempty"`
	ResourceID       string `json:"resource_id"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeazure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s fakeazure.Settings
	auth := fs.String("auth", string(fakeazure.AuthBoth), "Authorization forms Speech accepts: bearer, aad or both (OpenAI: bearer only)")
	ttsAuth := fs.String("tts-auth", "", "Authorization forms text to speech accepts, when other than -auth: bearer, aad or both")
	fs.StringVar(&s.ResourceID, "resource-id", fakeazure.DefaultResourceID, "ARM resource id the aad# form must carry")
	fs.DurationVar(&s.TokenLifetime, "token-lifetime", fakeazure.DefaultTokenLifetime, "lifetime of issued tokens")
	fs.BoolVar(&s.Redirect, "redirect", false, "answer the custom-domain TTS WebSocket upgrade with -redirect-status to the regional listener")
	fs.IntVar(&s.RedirectStatus, "redirect-status", 301, "status of the -redirect answer: 301, 302, 307 or 308")
	fs.BoolVar(&s.RedirectREST, "redirect-rest", false, "answer custom-domain REST TTS with 307 to the regional listener")
	fs.StringVar(&s.Phrase, "phrase", fakeazure.DefaultPhrase, "DisplayText of every recognition")
	fs.DurationVar(&s.SSEGap, "sse-gap", fakeazure.DefaultSSEGap, "pause between server-sent events of a streamed chat completion")
	fs.DurationVar(&s.ChatDelay, "chat-delay", 0, "how long a non-streaming chat completion thinks before it answers")
	azDir := fs.String("az-dir", "", "write the fake az script into this directory (created if missing)")
	caFile := fs.String("tls-ca", "", "also serve the custom domain over TLS, and write the CA certificate that signed its certificate (PEM) to this file")
	verbose := fs.Bool("v", false, "log every request to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	s.Auth = fakeazure.AuthMode(*auth)
	s.TTSAuth = fakeazure.AuthMode(*ttsAuth)
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	az, err := fakeazure.Start(fakeazure.Options{Settings: s, Logger: logger, TLS: *caFile != ""})
	if err != nil {
		return err
	}
	defer az.Close()

	line := ready{
		URL:              az.URL(),
		CustomHost:       az.CustomHost(),
		Regional:         az.RegionalHost(),
		IdentityEndpoint: az.IdentityEndpoint(),
		IdentityHeader:   az.IdentityHeader(),
		ResourceID:       az.Settings().ResourceID,
	}
	if *caFile != "" {
		if err := os.WriteFile(*caFile, az.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("tls ca file: %w", err)
		}
		line.TLSURL, line.CAFile = az.TLSURL(), *caFile
	}
	if *azDir != "" {
		dir, err := filepath.Abs(*azDir)
		if err != nil {
			return fmt.Errorf("az dir: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("az dir: %w", err)
		}
		if err := az.WriteAZ(dir); err != nil {
			return err
		}
		line.AZDir = dir
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("ready line: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return fmt.Errorf("print ready line: %w", err)
	}
	logger.Info("fakeazure serving", "url", line.URL, "regional", line.Regional)
	<-ctx.Done()
	logger.Info("fakeazure stopping")
	return nil
}
