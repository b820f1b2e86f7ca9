// A web page the user visits must not spend the proxy's identity, by any
// kind of request: Debian's Chromium, driven by playwright-core, loads
// hostile pages from four other loopback origins that try every kind of
// request at the proxy, and the fake Azure must see none of them. A page on
// an allowed origin can use fetch and a WebSocket. A page on a name rebound
// to 127.0.0.1 reads neither the proxy nor the admin listener, and a page on
// another site cannot probe the admin listener.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startFake, startProxy, stopAll } from "../lib/harness.js";
import { HOSTILE_KINDS, launchChromium, startPageServer } from "../lib/browser.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

const REBIND_HOST = "rebind.test";
// How long the four hostile pages' requests may take to reach the proxy: a
// few seconds on a 2-core machine running a CPU hog beside the suite, so a
// working setup does not come near it (a hang guard, as the harness's).
const PROBES_BOUND_MS = 120_000;

let fake, proxy, browser, pages127, pages127b, allowedPages;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer"]);
  // Hostile pages on 127.0.0.1 (served as evil.localhost, localhost and
  // 127.0.0.1) and on 127.0.0.2; the allowed page on a port of its own.
  pages127 = await startPageServer("127.0.0.1");
  pages127b = await startPageServer("127.0.0.2");
  allowedPages = await startPageServer("127.0.0.1");
  proxy = await startProxy(fake, { env: { ENTRAPROXY_ALLOWED_ORIGINS: `http://localhost:${allowedPages.port}` } });
  browser = await launchChromium({ resolverRules: `MAP ${REBIND_HOST} 127.0.0.1` });
});
after(() => stopAll(browser, proxy, fake, pages127, pages127b, allowedPages));

const proxyPort = () => proxy.listen.split(":").at(-1);
const adminPort = () => proxy.ready.admin.split(":").at(-1);

// The hostile origins, and the proxy URL each targets: another site
// (127.0.0.2, evil.localhost), or the same site on another port.
const hostileOrigins = () => [
  { id: "ip-127-0-0-2", page: `http://127.0.0.2:${pages127b.port}`, proxy: `127.0.0.1:${proxyPort()}`, site: "cross-site" },
  { id: "evil-localhost", page: `http://evil.localhost:${pages127.port}`, proxy: `127.0.0.1:${proxyPort()}`, site: "cross-site" },
  { id: "localhost-other-port", page: `http://localhost:${pages127.port}`, proxy: `localhost:${proxyPort()}`, site: "same-site" },
  { id: "ip-127-0-0-1-other-port", page: `http://127.0.0.1:${pages127.port}`, proxy: `127.0.0.1:${proxyPort()}`, site: "same-site" },
];

// What the upstream saw, one line per request.
const upstreamSaw = async () => (await fake.requests()).map((r) => `${r.method} ${r.path} ${r.status} ${r.form ?? "-"}`).sort();
const ALLOWED_PAGE_REQUESTS = [
  "GET /tts/cognitiveservices/voices/list 200 bearer",
  "GET /tts/cognitiveservices/websocket/v1 101 bearer",
  "POST /openai/deployments/gpt-4o/chat/completions 200 bearer",
];

test("hostile pages on four other loopback origins: every kind of request, zero reach the upstream", async (t) => {
  const origins = hostileOrigins();
  const keys = origins.flatMap((o) => HOSTILE_KINDS.map(({ kind }) => `${o.id}/${kind}`));
  // All four pages at once, each making every kind of request at once.
  await Promise.all(origins.map(async (o) => {
    const page = await browser.context.newPage();
    const q = new URLSearchParams({ base: `http://${o.proxy}/probe/${o.id}/`, ws: `ws://${o.proxy}/probe/${o.id}/` });
    await page.goto(`${o.page}/hostile?${q}`, { waitUntil: "domcontentloaded" });
  }));
  // Each request that reaches the proxy gets an access log line with its
  // path: waiting for one per probe proves that Chromium made every kind of
  // request, and that the proxy has judged it.
  await proxy.waitPaths(keys.map((k) => `/probe/${k}`), PROBES_BOUND_MS);
  const spent = new Set((await fake.requests()).filter((r) => r.path.startsWith("/probe/")).map((r) => r.path.slice("/probe/".length)));
  const byKind = HOSTILE_KINDS.map(({ kind }) => {
    const n = origins.filter((o) => spent.has(`${o.id}/${kind}`)).length;
    return `${kind}:${n}/${origins.length}`;
  });
  t.diagnostic(`Chromium ${browser.version}: ${HOSTILE_KINDS.length} kinds of request x ${origins.length} hostile origins = ${keys.length} tried, ${spent.size} spent the identity at the upstream`);
  t.diagnostic(`spent by kind: ${byKind.join(" ")}`);
  t.diagnostic(`origins: ${origins.map((o) => `${o.page} -> ${o.proxy} (${o.site})`).join(", ")}`);

  assert.deepEqual(await upstreamSaw(), [], "hostile requests reached the upstream with the proxy's token");
  const lines = proxy.logs().filter((l) => l.path?.startsWith("/probe/"));
  for (const l of lines) {
    assert.equal(l.status, 403, `${l.method} ${l.path}: status ${l.status}`);
    assert.equal(l.error, "origin_not_allowed", `${l.method} ${l.path}: error ${l.error}`);
  }
});

test("DNS rebinding: a page on a name rebound to 127.0.0.1 reads neither the proxy nor /readyz and /metrics", async (t) => {
  const page = await browser.context.newPage();
  const tried = [];
  // The name the attacker controls now resolves to the proxy: the browser
  // treats the proxy as the page's own origin.
  for (const [listener, port, path] of [["proxy", proxyPort(), "/probe/rebind/document"], ["admin", adminPort(), "/readyz"]]) {
    const doc = await page.goto(`http://${REBIND_HOST}:${port}${path}`);
    tried.push(`${listener} document ${doc.status()}`);
    assert.equal(doc.status(), 403, `${listener}: the rebound document loaded`);
    const reads = listener === "proxy" ? ["/probe/rebind/same-origin-fetch"] : ["/readyz", "/metrics", "/healthz"];
    for (const p of reads) {
      const got = await page.evaluate(async (u) => {
        const r = await fetch(u);
        return { status: r.status, body: await r.text() };
      }, p);
      seen.add(`rebound ${listener} ${p}`, got.body);
      tried.push(`${listener} ${p} ${got.status}`);
      assert.equal(got.status, 403, `${listener} ${p}: a rebound page read ${got.body.slice(0, 200)}`);
      assert.match(got.body, /"code":"host_not_allowed"/);
      assert.doesNotMatch(got.body, /entraproxy_|"ready"|"ok"/);
    }
  }
  await page.close();
  t.diagnostic(`rebinding: ${tried.join(", ")}`);
  assert.deepEqual(await upstreamSaw(), []);
});

test("a page on another site probes the admin listener: every kind of request gets 403, none reads ready or not", async (t) => {
  // The hostile page's whole battery, aimed at /readyz: without the
  // Sec-Fetch-Site rule on the admin listener, the load and error events
  // of an <iframe>, <object> or no-cors fetch there tell a page whether the
  // proxy holds a token. The admin listener writes no access log, so what
  // it answered is read from Chromium's own network events; the kinds waited
  // for are GETs without Origin (only Sec-Fetch-Site gives them away) that
  // Chromium reports a response for (for <img>, <script>, CORS fetch and
  // XHR at a JSON answer it reports a failed request, status unseen).
  const port = adminPort();
  const answered = new Map(); // kind -> statuses
  const mustAnswer = ["iframe", "object", "embed", "link-prefetch", "no-cors-fetch", "navigation", "window-open"];
  let allAnswered;
  const done = new Promise((resolve) => { allAnswered = resolve; });
  const onResponse = (r) => {
    const u = new URL(r.url());
    if (u.port !== port || !u.searchParams.has("kind")) return;
    const kind = u.searchParams.get("kind");
    answered.set(kind, [...(answered.get(kind) ?? []), r.status()]);
    if (mustAnswer.every((k) => answered.has(k))) allAnswered();
  };
  browser.context.on("response", onResponse);
  try {
    const page = await browser.context.newPage();
    const q = new URLSearchParams({ base: `http://127.0.0.1:${port}/readyz?kind=`, ws: `ws://127.0.0.1:${port}/readyz?kind=` });
    await page.goto(`http://127.0.0.2:${pages127b.port}/hostile?${q}`, { waitUntil: "domcontentloaded" });
    let timer;
    await Promise.race([done, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`admin answers seen: ${[...answered.keys()].join(", ")}`)), PROBES_BOUND_MS); })]);
    clearTimeout(timer);
  } finally {
    browser.context.off("response", onResponse);
  }
  const seenKinds = [...answered].map(([k, s]) => `${k}:${s.join("/")}`).sort();
  t.diagnostic(`admin listener, from http://127.0.0.2 (cross-site): ${seenKinds.join(" ")}`);
  for (const [kind, statuses] of answered) {
    for (const status of statuses) assert.equal(status, 403, `${kind}: the admin listener answered ${status}`);
  }
});

test("allowed origin: CORS fetch, a preflighted POST and a WebSocket synthesis work through the proxy", async (t) => {
  const page = await browser.context.newPage();
  await page.goto(`http://localhost:${allowedPages.port}/blank`);
  const proxyURL = `http://127.0.0.1:${proxyPort()}`;
  const got = await page.evaluate(async (base) => {
    const out = {};
    const voices = await fetch(base + "/cognitiveservices/voices/list");
    out.voices = { status: voices.status, count: (await voices.json()).length };
    const chat = await fetch(base + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", {
      method: "POST",
      headers: { "Content-Type": "application/json", "api-key": "dummy-key-ENTRAPROXY-E2E" },
      body: JSON.stringify({ messages: [{ role: "user", content: "Say hello." }] }),
    });
    out.chat = { status: chat.status, content: (await chat.json()).choices?.[0]?.message?.content };
    out.ws = await new Promise((resolve) => {
      // The Speech SDK's TTS turn, by hand: USP text frames (headers, a
      // blank line, the body), audio back in binary frames until turn.end.
      const id = "0123456789abcdef0123456789abcdef";
      const ws = new WebSocket(base.replace("http", "ws") + "/cognitiveservices/websocket/v1?X-ConnectionId=" + id);
      ws.binaryType = "arraybuffer";
      let audio = 0;
      const paths = [];
      ws.onopen = () => {
        const frame = (path, type, body) => `Path: ${path}\r\nX-RequestId: ${id}\r\nX-Timestamp: ${new Date().toISOString()}\r\nContent-Type: ${type}\r\n\r\n${body}`;
        ws.send(frame("synthesis.context", "application/json", JSON.stringify({ synthesis: { audio: { outputFormat: "raw-16khz-16bit-mono-pcm" } } })));
        ws.send(frame("ssml", "application/ssml+xml", "<speak version='1.0' xml:lang='en-US'><voice name='en-US-AvaMultilingualNeural'>Hello</voice></speak>"));
      };
      ws.onmessage = (e) => {
        if (typeof e.data !== "string") {
          const view = new DataView(e.data);
          audio += e.data.byteLength - 2 - view.getUint16(0);
          return;
        }
        const path = e.data.match(/^Path:\s*(\S+)/im)?.[1];
        paths.push(path);
        if (path === "turn.end") { ws.close(1000); resolve({ opened: true, audio, paths }); }
      };
      ws.onerror = () => resolve({ opened: false, audio, paths, error: "error" });
      ws.onclose = (e) => resolve({ opened: false, audio, paths, error: "closed " + e.code });
    });
    return out;
  }, proxyURL);
  await page.close();
  seen.add("allowed page results", got);
  t.diagnostic(`allowed origin: voices ${got.voices.status} (${got.voices.count} voices), chat ${got.chat.status}, WebSocket ${got.ws.opened ? "opened" : got.ws.error} (${got.ws.audio} bytes of audio)`);

  assert.equal(got.voices.status, 200);
  assert.ok(got.voices.count > 0, "no voices read");
  assert.equal(got.chat.status, 200);
  assert.ok(got.chat.content, "no completion read");
  assert.ok(got.ws.opened, `WebSocket: ${got.ws.error}`);
  assert.deepEqual(got.ws.paths, ["turn.start", "response", "turn.end"]);
  assert.equal(got.ws.audio, 1600 * "Hello".length);

  // The upstream got each with the proxy's token, and nothing else: no
  // preflight, nothing from the hostile pages.
  assert.deepEqual(await upstreamSaw(), ALLOWED_PAGE_REQUESTS);
  assert.ok(proxy.logs().some((l) => l.method === "OPTIONS" && l.status === 204), "no preflight answered by the proxy");
});

test("gateway mode: a page on an allowed origin calls with its key, and reads the 401 JSON without it", async (t) => {
  // A gateway of its own (inbound keys) in front of a fake of its own, so
  // the other tests' counts of what the upstream saw stay theirs.
  const key = "gateway-key-ENTRAPROXY-E2E";
  const gwFake = await startFake(["-auth", "bearer"]);
  const gateway = await startProxy(gwFake, {
    env: { ENTRAPROXY_INBOUND_KEYS: key, ENTRAPROXY_ALLOWED_ORIGINS: `http://localhost:${allowedPages.port}` },
  });
  try {
    const page = await browser.context.newPage();
    await page.goto(`http://localhost:${allowedPages.port}/blank`);
    // Both fetches are preflighted (a JSON body; the api-key header), and
    // browsers send a preflight without the key.
    const got = await page.evaluate(async ({ base, key }) => {
      const call = async (headers) => {
        try {
          const r = await fetch(base + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", {
            method: "POST",
            headers: { "Content-Type": "application/json", ...headers },
            body: JSON.stringify({ messages: [{ role: "user", content: "Say hello." }] }),
          });
          return { status: r.status, body: await r.json() };
        } catch (err) {
          return { error: String(err) };
        }
      };
      return { withKey: await call({ "api-key": key }), withoutKey: await call({}) };
    }, { base: gateway.http, key });
    await page.close();
    seen.add("gateway page results", got);
    t.diagnostic(`gateway: with the key ${got.withKey.status ?? got.withKey.error}, without ${got.withoutKey.status ?? got.withoutKey.error} ${got.withoutKey.body?.error?.code ?? ""}`);

    assert.equal(got.withKey.status, 200, `with the key: ${JSON.stringify(got.withKey)}`);
    assert.ok(got.withKey.body.choices?.[0]?.message?.content, "no completion read");
    assert.equal(got.withoutKey.status, 401, `without the key: ${JSON.stringify(got.withoutKey)}`);
    assert.equal(got.withoutKey.body.error.code, "inbound_key_required");
    // Chromium may answer the second preflight from its cache.
    const preflights = gateway.logs().filter((l) => l.method === "OPTIONS").map((l) => l.status);
    assert.ok(preflights.length > 0 && preflights.every((s) => s === 204), `preflights answered ${preflights}, want 204`);
    const saw = (await gwFake.requests()).map((r) => `${r.method} ${r.path} ${r.status} ${r.form ?? "-"}`);
    assert.deepEqual(saw, ["POST /openai/deployments/gpt-4o/chat/completions 200 bearer"]);
  } finally {
    await gateway.stop();
    assert.ok(!gateway.rawLogs().some((l) => l.includes(key)), "the gateway logged its inbound key");
    assertNoSecrets({ logs: gateway.rawLogs(), seen, tokens: await gateway.issuedTokens() });
    await gwFake.stop();
  }
});

test("after shutdown: the upstream's log holds no hostile request, and nothing leaked", async (t) => {
  // With the browser gone, a graceful stop finishes every request still in
  // flight: a hostile request the browser gave up on but the proxy
  // forwarded would be in the fake's log now.
  await browser.stop();
  const exit = await proxy.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, "the proxy did not stop cleanly");
  // The browser asks for /favicon.ico wherever it shows a page, the proxy's
  // 403 pages in the hostile popups included; those never leave the proxy.
  const icons = proxy.logs().filter((l) => l.path === "/favicon.ico").map((l) => l.status);
  t.diagnostic(`favicon requests answered by the proxy itself: ${icons.length} (${[...new Set(icons)].join(", ")})`);
  assert.deepEqual(await upstreamSaw(), ALLOWED_PAGE_REQUESTS);
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
