"""Starts bin/fakeazure and bin/entraproxy for the Python suite, as
e2e/lib/harness.js does for the JavaScript one: every process listens on a
127.0.0.1 port the kernel picks, and its address comes from its ready line."""

import json
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BIN = REPO / "bin"

#: The dummy key every client sends; it must never reach a log or Azure.
DUMMY_KEY = "dummy-key-ENTRAPROXY-E2E"

#: How long a process may take to print its ready line. A bound a working
#: process cannot reach, not a pause.
START_TIMEOUT = 30

#: The Speech SDK versions the suite runs, and the Python of each one's
#: virtual environment (scripts/python-env.sh makes them).
SDK_VERSIONS = {
    "1.45.0": HERE / ".venv-speech-1.45.0" / "bin" / "python",
    "1.53.0": HERE / ".venv" / "bin" / "python",
}
NEWEST = "1.53.0"


def base_env():
    """The environment a child starts from: ours, less anything that could
    make azidentity, the SDKs or Go pick another credential or route."""
    env = {}
    for k, v in os.environ.items():
        if re.match(r"^(AZURE_|ENTRAPROXY_|IDENTITY_|MSI_|IMDS_|SSL_CERT_)", k, re.I):
            continue
        if re.match(r"^(https?|all|no)_proxy$", k, re.I):
            continue
        env[k] = v
    return env


class Child:
    """A process whose output lines are kept; wait_line blocks until one
    matches (already seen or future)."""

    def __init__(self, name, args, env):
        for a in args[:1]:
            if not Path(a).exists():
                raise RuntimeError(f"{a} is missing: run 'make build' in {REPO}")
        self.name = name
        self.lines = {"stdout": [], "stderr": []}
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.readers = [threading.Thread(target=self._read, args=(s,), daemon=True) for s in ("stdout", "stderr")]
        for t in self.readers:
            t.start()

    def _read(self, stream):
        for line in getattr(self.proc, stream):
            with self.cond:
                self.lines[stream].append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, stream, pred, what, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[stream]:
                    if pred(line):
                        return line
                if self.proc.poll() is not None and not any(t.is_alive() for t in self.readers):
                    raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before {what}:\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name}: no {what} within {timeout} s:\n{self.output()}")
                self.cond.wait(left)

    def output(self):
        return "\n".join((self.lines["stdout"] + self.lines["stderr"])[-40:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self.readers:
            t.join()
        return self.proc.returncode


class Fake:
    """bin/fakeazure and its /_fake/ controls."""

    def __init__(self, args, tmp):
        self.child = Child("fakeazure", [str(BIN / "fakeazure"), "-az-dir", str(tmp / "fake-az"), *args], base_env())
        line = self.child.wait_line("stdout", lambda l: l.startswith("{"), "ready line")
        self.info = json.loads(line)
        self.url = self.info["url"]

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(req, timeout=30) as res:
            raw = res.read()
        return json.loads(raw) if raw else None

    def requests(self):
        return self.control("GET", "/_fake/requests")

    def stats(self):
        return self.control("GET", "/_fake/stats")

    def config(self, **changes):
        return self.control("POST", "/_fake/config", changes)

    def reset(self):
        self.control("POST", "/_fake/reset")

    def stop(self):
        self.child.stop()


def recording_az(inner_az, tmp):
    """An az that runs inner_az and also appends what it printed to a
    record file, so tests know the exact tokens the proxy got."""
    d = tmp / "recording-az"
    d.mkdir(exist_ok=True)
    record = d / "issued.jsonl"
    script = d / "az"
    script.write_text(f"""#!/bin/bash
out=$({inner_az} "$@") || exit $?
printf '%s\\n' "$out" >> {record}
printf '%s\\n' "$out"
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)

    def tokens():
        if not record.exists():
            return []
        return [json.loads(l)["accessToken"] for l in record.read_text().splitlines() if l.strip()]

    return d, tokens


def script_az(tmp, body):
    """An az whose whole program is body (bash)."""
    d = tmp / "script-az"
    d.mkdir(exist_ok=True)
    (d / "az").write_text("#!/bin/bash\n" + body)
    (d / "az").chmod(0o755)
    return d


class Proxy:
    """bin/entraproxy in front of a fake, with JSON logs at debug level. The
    credential is azure-cli: the fake's az behind a recording one, or
    az_dir's."""

    def __init__(self, fake, tmp, env=None, az_dir=None, wait_ready=True):
        self.issued = lambda: []
        if az_dir is None:
            az_dir, self.issued = recording_az(Path(fake.info["az_dir"]) / "az", tmp)
        e = base_env()
        e.update({
            "ENTRAPROXY_UPSTREAM": fake.url,
            "ENTRAPROXY_LISTEN": "127.0.0.1:0",
            "ENTRAPROXY_ADMIN_LISTEN": "127.0.0.1:0",
            "ENTRAPROXY_CREDENTIAL": "azure-cli",
            "ENTRAPROXY_LOG_FORMAT": "json",
            "ENTRAPROXY_LOG_LEVEL": "debug",
            "ENTRAPROXY_SHUTDOWN_TIMEOUT": "3s",
            "PATH": f"{az_dir}:{os.environ['PATH']}",
        })
        e.update(env or {})
        self.child = Child("entraproxy", [str(BIN / "entraproxy")], e)
        try:
            line = self.child.wait_line("stderr", lambda l: '"msg":"ready"' in l, '"msg":"ready" log line')
        except Exception:
            self.child.stop()
            raise
        self.ready = json.loads(line)
        self.listen = self.ready["listen"]
        self.port = int(self.listen.rsplit(":", 1)[1])
        self.ws = "ws://" + self.listen
        self.http = "http://" + self.listen
        self.admin = "http://" + self.ready["admin"]

    def logs(self):
        out = []
        for l in self.child.lines["stderr"]:
            try:
                out.append(json.loads(l))
            except ValueError:
                pass
        return out

    def raw_logs(self):
        return list(self.child.lines["stderr"])

    def wait_logged(self, msg, count=1):
        """Waits until count log lines with this msg were written (a
        WebSocket session logs its line when it ends)."""
        needle = f'"msg":{json.dumps(msg)}'
        lines = self.child.lines["stderr"]
        self.child.wait_line("stderr", lambda _: sum(needle in l for l in lines) >= count, f"{count} lines with msg {msg}")

    def stop(self):
        """Stops the proxy, then checks its whole log: no token it was
        issued, no JWT-shaped string, no client key, at any level."""
        code = self.child.stop()
        logs = "\n".join(self.raw_logs())
        for tok in self.issued():
            assert tok not in logs, "a token issued to the proxy is in its log"
        assert DUMMY_KEY not in logs, "the clients' dummy key is in the proxy's log"
        assert not re.search(r"eyJ[\w-]{8,}\.[\w-]{8,}\.", logs), "a JWT-shaped string is in the proxy's log"
        return code


def run_client(python, script, *args, env=None, timeout=120):
    """Runs a client program (clients/NAME.py) with the given Python and
    returns its last stdout line as JSON, or raises with its output."""
    e = base_env()
    e.update(env or {})
    res = subprocess.run([str(python), str(HERE / "clients" / script), *map(str, args)], env=e,
                         capture_output=True, text=True, timeout=timeout)
    lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
    if res.returncode != 0 or not lines:
        raise AssertionError(f"{script} {args} exited {res.returncode}:\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}")
    return json.loads(lines[-1])


def closing_listener():
    """A TCP listener on 127.0.0.1 that accepts every connection and closes
    it at once: an upstream that is there but never answers. Returns
    (address, stop)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    done = threading.Event()

    def loop():
        while not done.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()

    def stop():
        done.set()
        # close() does not wake a thread blocked in accept(); a connection does.
        socket.create_connection(srv.getsockname(), timeout=10).close()
        t.join()
        srv.close()

    return "127.0.0.1:%d" % srv.getsockname()[1], stop


def service_requests(fake, listener=None):
    """The fake's recorded service requests (not its controls)."""
    return [r for r in fake.requests() if listener is None or r["listener"] == listener]


def assert_clean_upstream(reqs, issued, form="bearer"):
    """Every request the upstream saw carried exactly one Authorization in
    form with a token the fake issued to this proxy, and no key in a header
    or the query."""
    assert reqs, "the upstream saw no request"
    for r in reqs:
        auth = [v for k, vs in r["header"].items() if k.lower() == "authorization" for v in vs]
        assert len(auth) == 1, f"{r['path']}: Authorization headers = {auth}, want exactly one"
        assert r.get("form") == form, f"{r['path']}: form = {r.get('form')}, want {form}"
        assert r.get("tokenSeq", 0) > 0, f"{r['path']}: token not issued by the fake"
        keys = [k for k in r["header"] if k.lower() in ("ocp-apim-subscription-key", "api-key")]
        assert not keys, f"{r['path']}: key headers {keys} reached the upstream"
        assert not re.search(r"(?i)(subscription-key|api-key|authorization)=", r["query"] or ""), \
            f"{r['path']}: credential in query {r['query']}"
