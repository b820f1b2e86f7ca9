package buildcheck

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/entraproxy/entraproxy/config"
)

// Every ENTRAPROXY_* variable an example or the Dockerfile names, even in a
// comment, is one config really reads: a typo there is a setting that
// silently does nothing.
func TestExamplesNameRealSettings(t *testing.T) {
	real := map[string]bool{}
	for _, s := range config.Settings() {
		real[s.Var] = true
	}
	root := repoRoot(t)
	files := []string{filepath.Join(root, "Dockerfile")}
	err := filepath.WalkDir(filepath.Join(root, "examples"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`ENTRAPROXY_[A-Z0-9_]*[A-Z0-9]`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for i, line := range strings.Split(string(b), "\n") {
			for _, v := range name.FindAllString(line, -1) {
				seen++
				if !real[v] {
					t.Errorf("%s:%d names %s, which is not a setting (config.Settings)", rel, i+1, v)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no ENTRAPROXY_ variable found in examples/ or the Dockerfile")
	}
}

func TestComposeExample(t *testing.T) {
	docs := yamlDocs(t, filepath.Join(repoRoot(t), "examples", "docker-compose.yaml"))
	if len(docs) != 1 {
		t.Fatalf("documents = %d, want 1", len(docs))
	}
	services, _ := docs[0]["services"].(map[string]any)
	sidecar, ok := services["entraproxy"].(map[string]any)
	if !ok {
		t.Fatal("no services.entraproxy")
	}

	env := map[string]string{}
	switch e := sidecar["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			env[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			env[k] = v
		}
	}
	cfg, err := loadConfig(parseDockerfile(t).stages[1].env(t), env)
	if err != nil {
		t.Fatalf("the sidecar's settings (image ENV + environment) do not load:\n%v", err)
	}

	test, _ := dig(sidecar, "healthcheck", "test").([]any)
	if len(test) != 5 || !slices.Equal(strs(test[:4]), []string{"CMD", "/entraproxy", "wait", "--timeout"}) {
		t.Errorf("healthcheck.test = %q, want [CMD /entraproxy wait --timeout D] (no shell in distroless)", test)
	} else {
		waitFor := duration(t, "healthcheck --timeout", test[4])
		if hcTimeout := duration(t, "healthcheck.timeout", dig(sidecar, "healthcheck", "timeout")); hcTimeout <= waitFor {
			t.Errorf("healthcheck.timeout %v <= wait --timeout %v: Docker would kill the check before it answers", hcTimeout, waitFor)
		}
	}
	checkStopGrace(t, "stop_grace_period", duration(t, "stop_grace_period", sidecar["stop_grace_period"]), cfg)
	if sidecar["read_only"] != true {
		t.Error("entraproxy service: read_only is not true")
	}
	if drop := strs(asSlice(sidecar["cap_drop"])); !slices.Contains(drop, "ALL") {
		t.Errorf("entraproxy cap_drop = %q, want ALL", drop)
	}

	dependents := 0
	for name, s := range services {
		svc, _ := s.(map[string]any)
		cond, _ := dig(svc, "depends_on", "entraproxy", "condition").(string)
		if cond == "" {
			continue
		}
		dependents++
		if cond != "service_healthy" {
			t.Errorf("%s depends_on entraproxy condition %q, want service_healthy", name, cond)
		}
		// A loopback listener is reachable only from the sidecar's own
		// network namespace.
		if isLoopback(cfg.Listen) && svc["network_mode"] != "service:entraproxy" {
			t.Errorf("%s: entraproxy listens on %s, but %s does not share its network (network_mode: service:entraproxy)", name, cfg.Listen, name)
		}
	}
	if dependents == 0 {
		t.Error("no service depends_on entraproxy with a condition")
	}
}

func TestKubernetesExample(t *testing.T) {
	docs := yamlDocs(t, filepath.Join(repoRoot(t), "examples", "kubernetes", "deployment.yaml"))
	accounts := map[string]map[string]any{}
	var deploy map[string]any
	for _, d := range docs {
		name, _ := dig(d, "metadata", "name").(string)
		switch d["kind"] {
		case "ServiceAccount":
			accounts[name] = d
		case "Deployment":
			deploy = d
		}
	}
	if deploy == nil {
		t.Fatal("no Deployment")
	}
	pod, _ := dig(deploy, "spec", "template").(map[string]any)
	if got := dig(pod, "metadata", "labels", "azure.workload.identity/use"); got != "true" {
		t.Errorf(`pod label azure.workload.identity/use = %v, want "true" (a string)`, got)
	}
	saName, _ := dig(pod, "spec", "serviceAccountName").(string)
	sa, ok := accounts[saName]
	if !ok {
		t.Errorf("serviceAccountName %q: no such ServiceAccount in the file", saName)
	} else if id, _ := dig(sa, "metadata", "annotations", "azure.workload.identity/client-id").(string); id == "" {
		t.Errorf("ServiceAccount %s lacks the azure.workload.identity/client-id annotation", saName)
	}

	var sidecar map[string]any
	for _, c := range asSlice(dig(pod, "spec", "initContainers")) {
		if c, _ := c.(map[string]any); c["name"] == "entraproxy" {
			sidecar = c
		}
	}
	if sidecar == nil {
		t.Fatal("no initContainers entry named entraproxy (a native sidecar)")
	}
	if sidecar["restartPolicy"] != "Always" {
		t.Errorf("entraproxy restartPolicy = %v, want Always (native sidecar)", sidecar["restartPolicy"])
	}
	env := map[string]string{}
	for _, e := range asSlice(sidecar["env"]) {
		e, _ := e.(map[string]any)
		if v, ok := e["value"]; ok {
			env[fmt.Sprint(e["name"])] = fmt.Sprint(v)
		}
	}
	if env["ENTRAPROXY_CREDENTIAL"] != "workload-identity" {
		t.Errorf("ENTRAPROXY_CREDENTIAL = %q, want workload-identity", env["ENTRAPROXY_CREDENTIAL"])
	}
	cfg, err := loadConfig(parseDockerfile(t).stages[1].env(t), env)
	if err != nil {
		t.Fatalf("the sidecar's settings (image ENV + env) do not load:\n%v", err)
	}
	if !isLoopback(cfg.Listen) {
		t.Errorf("ENTRAPROXY_LISTEN = %s, want loopback: the app shares the pod's network namespace", cfg.Listen)
	}
	_, adminPort, _ := net.SplitHostPort(cfg.AdminListen)
	for probe, path := range map[string]string{"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		get, ok := dig(sidecar, probe, "httpGet").(map[string]any)
		if !ok {
			t.Errorf("entraproxy has no %s.httpGet", probe)
			continue
		}
		if get["path"] != path {
			t.Errorf("%s path = %v, want %s", probe, get["path"], path)
		}
		if port := containerPort(sidecar, get["port"]); port != adminPort {
			t.Errorf("%s port = %v, want the admin port %s", probe, get["port"], adminPort)
		}
	}
	grace, ok := dig(pod, "spec", "terminationGracePeriodSeconds").(int)
	if !ok {
		t.Error("no terminationGracePeriodSeconds (the default 30s is not more than the default shutdown timeout)")
	}
	checkStopGrace(t, "terminationGracePeriodSeconds", time.Duration(grace)*time.Second, cfg)

	sc, _ := sidecar["securityContext"].(map[string]any)
	nonRoot := sc["runAsNonRoot"] == true || dig(pod, "spec", "securityContext", "runAsNonRoot") == true
	if !nonRoot || sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false ||
		!slices.Contains(strs(asSlice(dig(sc, "capabilities", "drop"))), "ALL") {
		t.Errorf("entraproxy securityContext = %v, want runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation: false, drop ALL", sc)
	}
}

func TestSystemdExample(t *testing.T) {
	unit := parseUnit(t, filepath.Join(repoRoot(t), "examples", "systemd", "entraproxy.service"))
	for _, s := range []string{"Unit", "Service", "Install"} {
		if _, ok := unit[s]; !ok {
			t.Errorf("no [%s] section", s)
		}
	}
	svc := unit["Service"]
	exec, err := shellWords(strings.Join(svc["ExecStart"], " "))
	if err != nil || len(exec) == 0 || filepath.Base(strings.TrimLeft(exec[0], "-@:+!")) != "entraproxy" {
		t.Errorf("ExecStart = %q, want the entraproxy binary", svc["ExecStart"])
	}
	env := map[string]string{}
	for _, line := range svc["Environment"] {
		words, err := shellWords(line)
		if err != nil {
			t.Fatalf("Environment=%s: %v", line, err)
		}
		for _, w := range words {
			k, v, _ := strings.Cut(w, "=")
			env[k] = v
		}
	}
	if env["ENTRAPROXY_CREDENTIAL"] != "managed-identity" {
		t.Errorf("ENTRAPROXY_CREDENTIAL = %q, want managed-identity", env["ENTRAPROXY_CREDENTIAL"])
	}
	cfg, err := loadConfig(env)
	if err != nil {
		t.Fatalf("the unit's Environment= settings do not load:\n%v", err)
	}
	for k, want := range map[string]string{"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"} {
		if got := last(svc[k]); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if families := last(svc["RestrictAddressFamilies"]); !strings.Contains(families, "AF_INET") {
		t.Errorf("RestrictAddressFamilies=%q, want AF_INET and AF_INET6 (and nothing exotic)", families)
	}
	stop, err := systemdSeconds(last(svc["TimeoutStopSec"]))
	if err != nil {
		t.Errorf("TimeoutStopSec: %v", err)
	}
	checkStopGrace(t, "TimeoutStopSec", stop, cfg)
	if last(unit["Install"]["WantedBy"]) == "" {
		t.Error("[Install] has no WantedBy")
	}
}

// checkStopGrace checks that what kills the process waits for the drain and
// the shutdown timeout together, so in-flight work is not cut off.
func checkStopGrace(t *testing.T, what string, grace time.Duration, cfg *config.Config) {
	t.Helper()
	if need := cfg.DrainDelay + cfg.ShutdownTimeout; grace <= need {
		t.Errorf("%s %v <= ENTRAPROXY_DRAIN_DELAY + ENTRAPROXY_SHUTDOWN_TIMEOUT (%v): SIGKILL would cut off in-flight requests", what, grace, need)
	}
}

func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		docs = append(docs, d)
	}
}

// dig walks maps by key; it returns nil where the path does not exist.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func strs(v []any) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = fmt.Sprint(x)
	}
	return out
}

func duration(t *testing.T, what string, v any) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(fmt.Sprint(v))
	if err != nil {
		t.Errorf("%s = %v: %v", what, v, err)
	}
	return d
}

// containerPort resolves a probe's port (a number or a named containerPort).
func containerPort(container map[string]any, port any) string {
	if name, ok := port.(string); ok {
		for _, p := range asSlice(container["ports"]) {
			if p, _ := p.(map[string]any); p["name"] == name {
				return fmt.Sprint(p["containerPort"])
			}
		}
	}
	return fmt.Sprint(port)
}

func isLoopback(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// parseUnit reads a systemd unit file: [Section] headers, Key=Value lines
// (a key may repeat), # and ; comments, and backslash continuations.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string]map[string][]string{}
	var section string
	var pending string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			unit[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: want [Section] or Key=Value, got %q", path, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		unit[section][k] = append(unit[section][k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return unit
}

// systemdSeconds parses the time spans used here: "45", "45s", "1min 30s".
func systemdSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(s, "min", "m"), " ", ""))
	if err != nil {
		return 0, fmt.Errorf("time span %q: %w", s, err)
	}
	return d, nil
}
