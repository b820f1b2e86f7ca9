// Starts bin/fakeazure and bin/entraproxy for one test file, collects their
// output, and stops them again. Everything listens on 127.0.0.1 ports chosen
// by the kernel; the addresses come from the processes' ready lines.

import { spawn } from "node:child_process";
import http from "node:http";
import { once } from "node:events";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const bin = (name) => path.join(repoRoot, "bin", name);

/** The dummy key every client sends; it must never reach a log or Azure. */
export const DUMMY_KEY = "dummy-key-ENTRAPROXY-E2E";

// Hang guards, never verdicts about speed: each wait ends on an event (a
// ready line, a log line, an exit), and these only turn an event that never
// comes into a failure. No working proxy, fake or SDK takes this long, even
// on a loaded 2-core machine.
const START_TIMEOUT_MS = 120_000;

// Processes still running, killed when node exits however it exits.
const live = new Set();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

// A test file that hangs (an SDK waiting forever for a turn.end, say) must
// not hang CI: after FILE_TIMEOUT_MS the file fails, its processes die. The
// timer is unref'd, so it never keeps a finished file alive.
const FILE_TIMEOUT_MS = 600_000;
setTimeout(() => {
  console.error(`e2e harness: ${process.argv[1]} still running after ${FILE_TIMEOUT_MS / 1000} s; killing it`);
  process.exit(1);
}, FILE_TIMEOUT_MS).unref();

// The environment a child starts from: the parent's, less anything that could
// make azidentity, curl or Go pick another credential or route.
function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AZURE_|ENTRAPROXY_|IDENTITY_|MSI_|IMDS_)/i.test(k)) continue;
    if (/^(https?|all|no)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

function checkBuilt(name) {
  if (!existsSync(bin(name))) {
    throw new Error(`${bin(name)} is missing: run "make build" (or "make e2e") in ${repoRoot}`);
  }
}

/**
 * A child process whose stdout/stderr lines are kept. waitLine resolves with
 * the first line (already seen or future) for which pred returns true.
 */
class Child {
  constructor(name, file, args, env) {
    this.name = name;
    this.lines = { stdout: [], stderr: [] };
    this.waiters = [];
    this.proc = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    live.add(this.proc);
    this.exited = once(this.proc, "exit").then(([code, signal]) => {
      live.delete(this.proc);
      this.exit = { code, signal };
      for (const w of this.waiters) w.reject(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready:\n${this.output()}`));
      this.waiters = [];
      return this.exit;
    });
    for (const stream of ["stdout", "stderr"]) {
      readline.createInterface({ input: this.proc[stream] }).on("line", (line) => {
        this.lines[stream].push(line);
        this.waiters = this.waiters.filter((w) => {
          if (w.stream !== stream || !w.pred(line)) return true;
          w.resolve(line);
          return false;
        });
      });
    }
  }

  waitLine(stream, pred, what, timeoutMs = START_TIMEOUT_MS) {
    const seen = this.lines[stream].find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.exit) return Promise.reject(new Error(`${this.name} already exited:\n${this.output()}`));
    return new Promise((resolve, reject) => {
      const w = { stream, pred, resolve, reject };
      this.waiters.push(w);
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms:\n${this.output()}`));
      }, timeoutMs);
      timer.unref();
    });
  }

  output() {
    return [...this.lines.stdout, ...this.lines.stderr].slice(-40).join("\n");
  }

  /** SIGTERM, then SIGKILL if it has not exited after START_TIMEOUT_MS. */
  async stop() {
    if (this.exit) return this.exit;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), START_TIMEOUT_MS);
    const res = await this.exited;
    clearTimeout(timer);
    return res;
  }
}

/** The fake's control endpoints under /_fake/. */
export class Fake {
  constructor(child, info) {
    this.child = child;
    this.info = info; // url, custom_host, regional, identity_endpoint, identity_header, az_dir, resource_id
    this.url = info.url;
  }

  async control(method, p, body) {
    const res = await fetch(this.url + p, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`fake ${method} ${p}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? null : res.json();
  }
  requests() { return this.control("GET", "/_fake/requests"); }
  stats() { return this.control("GET", "/_fake/stats"); }
  streams() { return this.control("GET", "/_fake/streams"); }
  config(changes) { return changes ? this.control("POST", "/_fake/config", changes) : this.control("GET", "/_fake/config"); }
  reset() { return this.control("POST", "/_fake/reset"); }
  /** kind: "valid", "expired" or "foreign"; returns {token, expiresOn}. */
  token(kind) { return this.control("POST", "/_fake/token", { kind }); }
  stop() { return this.child.stop(); }
}

/** Starts bin/fakeazure with the given flags and waits for its JSON line. */
export async function startFake(args = []) {
  checkBuilt("fakeazure");
  const child = new Child("fakeazure", bin("fakeazure"), args, baseEnv());
  const line = await child.waitLine("stdout", (l) => l.startsWith("{"), "ready line on stdout");
  return new Fake(child, JSON.parse(line));
}

/** A running bin/entraproxy with its parsed JSON log lines. */
export class Proxy {
  constructor(child, ready, identity, issued) {
    this.child = child;
    this.ready = ready;
    this.identity = identity;
    this.issued = issued;
    this.listen = ready.listen;
    this.http = "http://" + ready.listen;
    this.ws = "ws://" + ready.listen;
    this.admin = "http://" + ready.admin;
  }
  /** Every stderr line, raw (for the secrets check). */
  rawLogs() { return this.child.lines.stderr.slice(); }
  /** The stderr lines that parse as JSON. */
  logs() {
    return this.child.lines.stderr.flatMap((l) => {
      try { return [JSON.parse(l)]; } catch { return []; }
    });
  }
  /**
   * Waits until no WebSocket session is live on the proxy, so that every
   * session a client has closed has its access line: the proxy writes it
   * before entraproxy_websocket_sessions_active drops, while the client's
   * close returns as soon as its own side is done. Nothing announces the
   * gauge, so /metrics is polled, within the hang guard.
   */
  async sessionsLogged() {
    const guard = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const metrics = await (await fetch(`${this.admin}/metrics`)).text();
      if (/^entraproxy_websocket_sessions_active 0$/m.test(metrics)) return;
      if (Date.now() > guard) throw new Error(`WebSocket sessions still live after ${START_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  /**
   * Waits until the proxy has logged count lines whose msg is msg (a
   * WebSocket session logs its line when it ends).
   */
  async waitLogged(msg, count = 1) {
    const matches = (l) => l.includes(`"msg":${JSON.stringify(msg)}`);
    const enough = () => this.child.lines.stderr.filter(matches).length >= count;
    await this.child.waitLine("stderr", enough, `${count} log lines with msg ${msg}`);
  }
  /**
   * Waits until the proxy has logged at least one line (an access line)
   * for each of paths, requests it has judged; past timeoutMs it fails
   * naming the paths still missing.
   */
  async waitPaths(paths, timeoutMs) {
    const missing = new Set(paths);
    const seen = (l) => {
      missing.delete(l.match(/"path":"([^"]*)"/)?.[1]);
      return missing.size === 0;
    };
    if (this.child.lines.stderr.some(seen)) return;
    const what = { toString: () => `log lines for ${[...missing].join(", ")}` };
    await this.child.waitLine("stderr", seen, what, timeoutMs);
  }
  /** The tokens handed to this proxy, as the recording identity endpoint or az saw them. */
  issuedTokens() { return this.issued(); }
  async stop() {
    const res = await this.child.stop();
    await this.identity?.close();
    return res;
  }
}

/**
 * Starts bin/entraproxy in front of fake. opts.credential is
 * "managed-identity" (the fake's identity endpoint behind a recording
 * forwarder, the default), "azure-cli" (opts.az, a recordingAz, or opts.azDir
 * first on PATH) or anything else with opts.env.
 * opts.env adds or overrides ENTRAPROXY_* settings.
 */
export async function startProxy(fake, opts = {}) {
  checkBuilt("entraproxy");
  const credential = opts.credential ?? "managed-identity";
  let identity;
  const env = {
    ...baseEnv(),
    ENTRAPROXY_UPSTREAM: fake.url,
    ENTRAPROXY_LISTEN: "127.0.0.1:0",
    ENTRAPROXY_ADMIN_LISTEN: "127.0.0.1:0",
    ENTRAPROXY_CREDENTIAL: credential,
    ENTRAPROXY_LOG_FORMAT: "json",
    ENTRAPROXY_LOG_LEVEL: "debug",
    ENTRAPROXY_SHUTDOWN_TIMEOUT: "3s",
  };
  if (credential === "managed-identity") {
    identity = await recordingIdentity(fake);
    env.IDENTITY_ENDPOINT = identity.endpoint;
    env.IDENTITY_HEADER = fake.info.identity_header;
  }
  const azDir = opts.az?.dir ?? opts.azDir;
  if (azDir) env.PATH = `${azDir}:${process.env.PATH}`;
  Object.assign(env, opts.env ?? {});
  const child = new Child("entraproxy", bin("entraproxy"), [], env);
  let line;
  try {
    line = await child.waitLine("stderr", (l) => l.includes('"msg":"ready"'), '"msg":"ready" log line');
  } catch (err) {
    await child.stop();
    await identity?.close();
    throw err;
  }
  const issued = identity ? async () => identity.tokens() : opts.az?.tokens ?? (async () => []);
  return new Proxy(child, JSON.parse(line), identity, issued);
}

/**
 * An App Service managed identity endpoint in front of the fake's: it passes
 * each token request on and remembers the access_token handed out, so tests
 * know the exact tokens the proxy holds and can look for them where they must
 * not be.
 */
async function recordingIdentity(fake) {
  const tokens = [];
  const server = http.createServer(async (req, res) => {
    try {
      const target = new URL(req.url, fake.info.identity_endpoint);
      const up = await fetch(fake.info.identity_endpoint + target.search, {
        headers: { "X-IDENTITY-HEADER": req.headers["x-identity-header"] ?? "" },
      });
      const body = await up.text();
      if (up.ok) tokens.push(JSON.parse(body).access_token);
      res.writeHead(up.status, { "Content-Type": up.headers.get("content-type") ?? "application/json" });
      res.end(body);
    } catch (err) {
      res.writeHead(502).end(String(err));
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    endpoint: `http://127.0.0.1:${server.address().port}/msi/token`,
    tokens: () => tokens.slice(),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Writes an az into a new temp dir that runs innerAz (the fake's) and also
 * appends what it printed to a record file, so the test knows the exact
 * tokens the proxy got. Returns {dir, tokens(), cleanup()}.
 */
export async function recordingAz(innerAz) {
  const dir = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-az-"));
  const record = path.join(dir, "issued.jsonl");
  const script = `#!/bin/bash
out=$(${JSON.stringify(innerAz)} "$@") || exit $?
printf '%s\\n' "$out" >> ${JSON.stringify(record)}
printf '%s\\n' "$out"
`;
  await writeFile(path.join(dir, "az"), script);
  await chmod(path.join(dir, "az"), 0o755);
  return {
    dir,
    async tokens() {
      const text = existsSync(record) ? await readFile(record, "utf8") : "";
      return text.split("\n").filter(Boolean).map((l) => JSON.parse(l).accessToken);
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Writes an az into a new temp dir that always prints token. */
export async function fixedAz(token, expiresOn) {
  const dir = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-az-"));
  const body = JSON.stringify({ accessToken: token, expires_on: expiresOn, tokenType: "Bearer" });
  await writeFile(path.join(dir, "az"), `#!/bin/bash\nprintf '%s\\n' '${body}'\n`);
  await chmod(path.join(dir, "az"), 0o755);
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A temp dir for the fake's az (-az-dir). */
export async function tempDir(prefix = "entraproxy-e2e-") {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Stops every given process or cleanup, ignoring the ones that are undefined. */
export async function stopAll(...things) {
  for (const t of things) {
    if (!t) continue;
    if (typeof t === "function") await t();
    else if (typeof t.stop === "function") await t.stop();
    else if (typeof t.cleanup === "function") await t.cleanup();
  }
}
