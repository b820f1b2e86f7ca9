package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/entraproxy/entraproxy/doctor"
	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// fakeWithAZ starts a fake and puts its az script first on PATH: the CLI
// credential runs a process per token and has no cache a token from
// another test could come from.
func fakeWithAZ(t *testing.T, s fakeazure.Settings) *fakeazure.Azure {
	t.Helper()
	fake, err := fakeazure.Start(fakeazure.Options{Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	if err := fake.WriteAZ(dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return fake
}

func TestDoctorJSONExitZero(t *testing.T) {
	fake := fakeWithAZ(t, fakeazure.Settings{Auth: fakeazure.AuthBearer})
	var stdout, stderr bytes.Buffer
	// --timeout: the fake answers at once; the default 3s per step could be
	// reached by a loaded machine and turn a pass into a failure.
	err := run(context.Background(), []string{"doctor", "--json", "--timeout", leakcheck.HangGuard.String()}, environ(
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"ENTRAPROXY_CREDENTIAL", "azure-cli",
	), nil, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("exit code = %d, want 0; stderr %q; stdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep doctor.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Summary.Verdict != doctor.Pass || len(rep.Checks) != 5 {
		t.Errorf("summary = %+v with %d checks, want a pass of 5", rep.Summary, len(rep.Checks))
	}
	if c := rep.Check("credential"); c == nil || !strings.HasPrefix(c.Summary, "AzureCLICredential gave a token") {
		t.Errorf("credential check = %+v, want AzureCLICredential named", c)
	}
	if strings.Contains(stdout.String(), "eyJ") {
		t.Errorf("stdout holds something JWT-shaped:\n%s", stdout.String())
	}
}

func TestDoctorFailedCheckExitOne(t *testing.T) {
	fake := fakeWithAZ(t, fakeazure.Settings{Auth: fakeazure.AuthAAD})
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"doctor", "--timeout", leakcheck.HangGuard.String()}, environ(
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"ENTRAPROXY_CREDENTIAL", "azure-cli",
		"ENTRAPROXY_AUTH_FORMAT", "bearer",
		"ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
	), nil, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if !strings.Contains(stdout.String(), "\n  ENTRAPROXY_AUTH_FORMAT=aad\n") {
		t.Errorf("stdout does not recommend ENTRAPROXY_AUTH_FORMAT=aad:\n%s", stdout.String())
	}
	if strings.Contains(stdout.String(), "\x1b[") {
		t.Error("stdout is not a terminal but holds colour codes")
	}
}

func TestDoctorBadSettingsExitTwo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"doctor"}, environ(
		"ENTRAPROXY_UPSTREAM", "https://eastus.api.cognitive.microsoft.com",
	), nil, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	if !strings.Contains(stdout.String(), "ENTRAPROXY_UPSTREAM=https://NAME.cognitiveservices.azure.com") {
		t.Errorf("stdout does not suggest the custom domain:\n%s", stdout.String())
	}
}

func TestDoctorBadFlagExitTwo(t *testing.T) {
	for _, args := range [][]string{{"doctor", "--frobnicate"}, {"doctor", "extra"}, {"doctor", "--service", "vision"}} {
		err := run(context.Background(), args, environ(), nil, io.Discard, io.Discard)
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("%q: exit code = %d, want 2", args, code)
		}
	}
}
