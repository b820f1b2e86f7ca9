package proxy_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/proxy"
)

// codeConstants are the values of the Code* constants in codes.go, read
// from its source: a code added there without the README, or written as a
// literal elsewhere without a constant, is caught by the tests below.
func codeConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range spec.Names {
			lit, ok := spec.Values[i].(*ast.BasicLit)
			if !ok || !strings.HasPrefix(name.Name, "Code") {
				t.Errorf("codes.go: %s is not a Code* string constant", name.Name)
				continue
			}
			v, _ := strconv.Unquote(lit.Value)
			codes[v] = name.Name
		}
		return true
	})
	return codes
}

// Every code has a row in the README's error table.
func TestCodesAreDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for code, name := range codeConstants(t) {
		if !regexp.MustCompile("(?m)^ *\\| [0-9]{3} \\| .*`" + code + "`").Match(readme) {
			t.Errorf("%s (%q) has no row in README.md's error table", name, code)
		}
	}
}

// Every code the proxy writes is one of the exported constants.
func TestCodesAreExported(t *testing.T) {
	codes := codeConstants(t)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile(`code:\s*"([^"]*)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllSubmatch(src, -1) {
			if _, ok := codes[string(m[1])]; !ok {
				t.Errorf("%s writes code %q, which codes.go does not export", f, m[1])
			}
		}
	}
}

type oneToken struct{}

func (oneToken) Token(context.Context) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "token-of-the-codes-test"}, nil
}

func (oneToken) Renew(ctx context.Context, _ string) (azcore.AccessToken, error) {
	return oneToken{}.Token(ctx)
}

// TestRedirectRefusalNamesTheHost: a refused redirect carries the host it
// led to as the envelope's target, on HTTP and on a WebSocket handshake, so
// a program (entraproxy doctor) can add it to ENTRAPROXY_REDIRECT_HOSTS
// without reading the message.
func TestRedirectRefusalNamesTheHost(t *testing.T) {
	elsewhere := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(elsewhere.Close)
	target, _ := url.Parse(elsewhere.URL)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+target.Host+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(upstream.Close)
	up, _ := url.Parse(upstream.URL)
	p, err := proxy.New(proxy.Options{Upstream: up, Tokens: oneToken{}, RedirectHosts: []string{"*.cognitiveservices.azure.com"}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)

	check := func(t *testing.T, status int, body []byte) {
		t.Helper()
		var env struct {
			Error struct{ Code, Message, Target string } `json:"error"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if status != http.StatusBadGateway || env.Error.Code != proxy.CodeRedirectNotAllowed || env.Error.Target != target.Host || env.Error.Message == "" {
			t.Errorf("answer = %d %+v, want 502 %s with target %s and a message", status, env.Error, proxy.CodeRedirectNotAllowed, target.Host)
		}
	}
	t.Run("http", func(t *testing.T) {
		resp, err := http.Get(front.URL + "/tts/cognitiveservices/voices/list")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		check(t, resp.StatusCode, body)
	})
	t.Run("websocket", func(t *testing.T) {
		conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/tts/cognitiveservices/websocket/v1", nil)
		if err == nil {
			conn.Close()
			t.Fatal("handshake accepted, want a refusal")
		}
		if resp == nil {
			t.Fatalf("no answer: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		check(t, resp.StatusCode, body)
	})
	// Other refusals carry no target.
	t.Run("no target elsewhere", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		req.Header.Set("Origin", "https://evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var env map[string]map[string]any
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(env["error"])); !slices.Equal(keys, []string{"code", "message"}) {
			t.Errorf("error fields = %v, want code and message only", keys)
		}
	})
}
