package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunPrintsReadyLineAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	azDir := filepath.Join(t.TempDir(), "bin")
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-auth", "aad", "-phrase", "Hi.", "-sse-gap", "10ms", "-az-dir", azDir}, pw, io.Discard)
		pw.Close()
		errc <- err
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read ready line: %v (run: %v)", err, <-errc)
	}
	go io.Copy(io.Discard, pr)
	var got ready
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	if !strings.HasPrefix(got.URL, "http://127.0.0.1:") || !strings.HasPrefix(got.Regional, "127.0.0.1:") ||
		got.IdentityEndpoint != got.URL+"/msi/token" || got.IdentityHeader == "" || got.AZDir != azDir || got.ResourceID == "" {
		t.Errorf("ready line = %+v, want every address", got)
	}
	if fi, err := os.Stat(filepath.Join(azDir, "az")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("az in -az-dir: %v, %v, want an executable", fi, err)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, got.URL+"/_fake/config", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET /_fake/config: %v", err)
	}
	var cfg map[string]any
	err = json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	if err != nil || cfg["auth"] != "aad" || cfg["phrase"] != "Hi." || cfg["sseGap"] != "10ms" {
		t.Errorf("config = %v, %v, want the flags' values", cfg, err)
	}

	cancel() // what SIGINT / SIGTERM do through signal.NotifyContext
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run after cancel = %v, want nil", err)
		}
	case <-time.After(2 * time.Minute): // a hang guard, not a verdict on speed
		t.Fatal("run did not return after cancel")
	}
}

func TestRunBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want error
	}{
		{[]string{"-auth", "key"}, errUsage},
		{[]string{"-token-lifetime", "soon"}, errUsage},
		{[]string{"extra"}, errUsage},
		{[]string{"-h"}, flag.ErrHelp},
	}
	for _, tc := range tests {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if !errors.Is(err, tc.want) {
			t.Errorf("run(%q) = %v, want %v", tc.args, err, tc.want)
		}
	}
}
