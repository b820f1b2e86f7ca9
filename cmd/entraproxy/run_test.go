package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/internal/fakeazure"
)

func environ(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestHelpListsEverySetting(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, environ(), nil, &out, io.Discard); err != nil {
			t.Fatalf("run %s: %v", arg, err)
		}
		for _, s := range config.Settings() {
			if !strings.Contains(out.String(), s.Var) || !strings.Contains(out.String(), s.Help) {
				t.Errorf("%s output lacks %s or its help", arg, s.Var)
			}
			if s.Default != "" && !strings.Contains(out.String(), "default: "+s.Default) {
				t.Errorf("%s output lacks the default of %s (%q)", arg, s.Var, s.Default)
			}
		}
	}
}

func TestBadSettingsExitTwo(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), nil, environ(
		"ENTRAPROXY_UPSTREAM", "https://eastus.api.cognitive.microsoft.com",
		"ENTRAPROXY_LOG_LEVEL", "loud",
	), nil, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	for _, want := range []string{`ENTRAPROXY_UPSTREAM "https://eastus.api.cognitive.microsoft.com": a regional endpoint`, `ENTRAPROXY_LOG_LEVEL "loud"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
		}
	}
}

func TestUnknownCommandExitTwo(t *testing.T) {
	err := run(context.Background(), []string{"frobnicate"}, environ(), nil, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, environ(), nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "entraproxy "+version+" (commit "+commit) {
		t.Errorf("version output = %q", out.String())
	}
}

// TestServe runs the whole program against the fake Azure: a managed
// identity token through azidentity, a REST synthesis through the proxy, and
// a clean shutdown when ctx ends.
func TestServe(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{Auth: fakeazure.AuthBearer}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	// azidentity reads these from the process environment.
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, logWriter := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, environ(
			"ENTRAPROXY_UPSTREAM", fake.URL(),
			"ENTRAPROXY_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_ADMIN_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_CREDENTIAL", "managed-identity",
			"ENTRAPROXY_LOG_FORMAT", "json",
		), nil, io.Discard, logWriter)
		logWriter.Close()
	}()

	lines := bufio.NewScanner(logs)
	var ready struct{ Listen, Admin, Credential string }
	var all strings.Builder
	for lines.Scan() {
		all.WriteString(lines.Text() + "\n")
		var entry struct {
			Msg string
		}
		json.Unmarshal(lines.Bytes(), &entry)
		if entry.Msg == "ready" {
			json.Unmarshal(lines.Bytes(), &ready)
			break
		}
	}
	if ready.Listen == "" {
		t.Fatalf("no ready line in logs (run: %v):\n%s", <-done, all.String())
	}
	if ready.Credential != "ManagedIdentityCredential" {
		t.Errorf("ready credential = %q, want ManagedIdentityCredential", ready.Credential)
	}
	go io.Copy(&all, logs) // keep the pipe flowing

	resp, err := http.Get("http://" + ready.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+ready.Listen+"/cognitiveservices/v1",
		strings.NewReader(`<speak version="1.0" xml:lang="en-US"><voice name="en-US-AriaNeural">Hello</voice></speak>`))
	req.Header.Set("Content-Type", "application/ssml+xml")
	req.Header.Set("X-Microsoft-OutputFormat", "riff-16khz-16bit-mono-pcm")
	req.Header.Set("Ocp-Apim-Subscription-Key", "dummy")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("RIFF")) {
		t.Fatalf("synthesis = %d %q, want 200 and a RIFF WAV", resp.StatusCode, body[:min(len(body), 200)])
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v, want nil after a clean shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of the shutdown signal")
	}
}

func TestLogFormats(t *testing.T) {
	for _, tc := range []struct {
		format   string
		wantJSON bool
	}{{"json", true}, {"auto", true}, {"text", false}} {
		var buf bytes.Buffer
		logger := newLogger(&config.Config{LogLevel: "info", LogFormat: tc.format}, &buf)
		logger.Info("hello", "k", "v")
		isJSON := json.Valid(bytes.TrimSpace(buf.Bytes()))
		if isJSON != tc.wantJSON {
			t.Errorf("format %s into a buffer wrote %q; JSON = %v, want %v", tc.format, buf.String(), isJSON, tc.wantJSON)
		}
		if strings.Contains(buf.String(), "\x1b[") {
			t.Errorf("format %s into a buffer (not a terminal) wrote colour codes: %q", tc.format, buf.String())
		}
	}
}
