//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/entraproxy/entraproxy/bench/internal/procfs"
)

const (
	nameDirect     = "direct"
	nameEntraproxy = "entraproxy"
	nameNginx      = "nginx"
	nameCaddy      = "caddy"
	nameTunnel     = "go-reverseproxy"
	nameKodingBare = "koding-bare"
	nameBaseline   = "entraproxy-baseline"
)

// contender is one thing the load goes through. direct is the upstream
// itself.
type contender struct {
	name string
	// http and ws say which figures it takes part in.
	http, ws bool
	url      string // http://127.0.0.1:port, while running
	cmd      *exec.Cmd
	// unavailable, when set, says why this contender is not measured.
	unavailable string
	// launch starts the process on port and returns the URL that answers
	// 200 once it is ready (for entraproxy /readyz, for the others a
	// request through them).
	launch func(port int) (*exec.Cmd, string, error)
}

func (c *contender) available() bool { return c.unavailable == "" }

func (c *contender) running() bool { return c.available() && c.url != "" }

func (c *contender) wsURL() string { return "ws" + strings.TrimPrefix(c.url, "http") }

func (c *contender) pid() int {
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// cpu is the CPU seconds the contender's processes used so far; 0 for direct.
func (c *contender) cpu() float64 {
	if c.cmd == nil {
		return 0
	}
	return procfs.CPUOf(c.pid()).Total()
}

func (b *bench) contenders() []*contender {
	direct := &contender{name: nameDirect, http: true, ws: true, url: b.upstream}
	ep := &contender{name: nameEntraproxy, http: true, ws: true, launch: b.launchEntraproxy}
	ngx := &contender{name: nameNginx, http: true, ws: true, launch: b.launchNginx}
	cdy := &contender{name: nameCaddy, http: true, ws: true, launch: b.launchCaddy}
	tun := &contender{name: nameTunnel, http: true, ws: true, launch: b.launchTunnel}
	bare := &contender{name: nameKodingBare, ws: true, launch: b.launchKodingBare}
	if _, err := exec.LookPath("nginx"); err != nil {
		ngx.unavailable = "nginx is not installed (Debian package nginx; bench/run.sh installs it with apt-get when it can); its columns are empty."
	}
	if _, err := exec.LookPath("caddy"); err != nil {
		cdy.unavailable = "caddy is not installed (Debian package caddy; bench/run.sh installs it with apt-get when it can); its columns are empty."
	}
	all := []*contender{direct, ep, bare, ngx, cdy, tun}
	if b.cfg.baseline != "" {
		all = append(all, &contender{name: nameBaseline, http: true, ws: true, launch: func(port int) (*exec.Cmd, string, error) {
			return b.launchEntraproxyBinary(b.cfg.baseline, port)
		}})
	}
	return all
}

// startFresh starts c (unless it is direct or not available) and records
// its time from start to ready.
func (b *bench) startFresh(c *contender) error {
	if c.launch == nil || !c.available() {
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	t0 := time.Now()
	cmd, readyURL, err := c.launch(port)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	c.cmd = cmd
	d, err := waitHTTP(b.ctx, readyURL, t0, 20*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %w (logs in %s)", c.name, err, b.cfg.tmp)
	}
	c.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	b.res.add("ready_ms", c.name, float64(d.Microseconds())/1e3)
	return nil
}

func (b *bench) logFile(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(b.cfg.tmp, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// launchEntraproxy runs the real binary as a user would: managed identity
// through azidentity against the fake endpoint, default settings otherwise
// (auth format auto, Speech paths on, JSON log of every request at info,
// written to a file).
func (b *bench) launchEntraproxy(port int) (*exec.Cmd, string, error) {
	return b.launchEntraproxyBinary(filepath.Join(b.cfg.bin, "entraproxy"), port)
}

func (b *bench) launchEntraproxyBinary(bin string, port int) (*exec.Cmd, string, error) {
	admin, err := freePort()
	if err != nil {
		return nil, "", err
	}
	logf, err := b.logFile("entraproxy.log")
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	env := append(b.pprofEnv(nameEntraproxy),
		"ENTRAPROXY_UPSTREAM="+b.upstream,
		fmt.Sprintf("ENTRAPROXY_LISTEN=127.0.0.1:%d", port),
		fmt.Sprintf("ENTRAPROXY_ADMIN_LISTEN=127.0.0.1:%d", admin),
		"ENTRAPROXY_CREDENTIAL=managed-identity",
		"IDENTITY_ENDPOINT="+b.identity.endpoint,
		"IDENTITY_HEADER="+b.identity.header,
	)
	cmd, err := b.p.start(b.cfg.proxyCPUs, env, nil, logf, bin)
	return cmd, fmt.Sprintf("http://127.0.0.1:%d/readyz", admin), err
}

// launchNginx runs nginx with one worker per proxy core, a keep-alive pool
// to the upstream, the static Authorization header, WebSocket upgrades, and
// the default access log (to a file), as one would deploy it. Connection
// slots are twice the descriptors: nginx starts closing connections well
// before it runs out of slots, and the descriptors are the real limit.
func (b *bench) launchNginx(port int) (*exec.Cmd, string, error) {
	dir := filepath.Join(b.cfg.tmp, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	up := strings.TrimPrefix(b.upstream, "http://")
	workers := cpuCount(b.cfg.proxyCPUs)
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile %d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;
events { worker_connections %[6]d; }
http {
    access_log %[3]s/access.log;
    client_body_temp_path %[3]s/body;
    proxy_temp_path %[3]s/proxy;
    fastcgi_temp_path %[3]s/fastcgi;
    uwsgi_temp_path %[3]s/uwsgi;
    scgi_temp_path %[3]s/scgi;
    upstream up {
        server %[4]s;
        keepalive 64;
    }
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
    server {
        listen 127.0.0.1:%[5]d;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Authorization "Bearer x";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
        location /sse {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer x";
            proxy_buffering off;
        }
    }
}
`, workers, b.maxIdle*2+fdReserve, dir, up, port, b.maxIdle*4)
	path, err := writeFile(dir, "nginx.conf", conf)
	if err != nil {
		return nil, "", err
	}
	logf, err := b.logFile("nginx.out")
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd, err := b.p.start(b.cfg.proxyCPUs, nil, logf, logf, "nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	return cmd, fmt.Sprintf("http://127.0.0.1:%d/echo", port), err
}

// launchCaddy runs caddy with reverse_proxy and a static header_up; caddy
// streams event streams and passes upgrades by default.
func (b *bench) launchCaddy(port int) (*exec.Cmd, string, error) {
	dir := filepath.Join(b.cfg.tmp, "caddy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	reverse_proxy %s {
		header_up Authorization "Bearer x"
	}
}
`, port, strings.TrimPrefix(b.upstream, "http://"))
	path, err := writeFile(dir, "Caddyfile", conf)
	if err != nil {
		return nil, "", err
	}
	logf, err := b.logFile("caddy.out")
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	cmd, err := b.p.start(b.cfg.proxyCPUs, env, logf, logf, "caddy", "run", "--config", path, "--adapter", "caddyfile")
	return cmd, fmt.Sprintf("http://127.0.0.1:%d/echo", port), err
}

func (b *bench) launchTunnel(port int) (*exec.Cmd, string, error) {
	logf, err := b.logFile("wstunnel.out")
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd, err := b.p.start(b.cfg.proxyCPUs, nil, logf, logf, filepath.Join(b.cfg.bin, "wstunnel"),
		append([]string{"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-upstream", b.upstream}, b.pprofArgs(nameTunnel)...)...)
	return cmd, fmt.Sprintf("http://127.0.0.1:%d/echo", port), err
}

// launchKodingBare runs koding/websocketproxy alone (bench/cmd/kodingbare),
// the floor of entraproxy's WebSocket relay. It relays WebSocket only.
func (b *bench) launchKodingBare(port int) (*exec.Cmd, string, error) {
	logf, err := b.logFile("kodingbare.out")
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd, err := b.p.start(b.cfg.proxyCPUs, nil, logf, logf, filepath.Join(b.cfg.bin, "kodingbare"),
		append([]string{"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-upstream", b.upstream}, b.pprofArgs(nameKodingBare)...)...)
	return cmd, fmt.Sprintf("http://127.0.0.1:%d/_bench/ready", port), err
}
