// Debian's Chromium driven by playwright-core, and the web pages the browser
// suite loads: hostile pages that try every kind of request a page can make
// at the proxy, and an allowed page. playwright-core never downloads a
// browser; `make test` installs the chromium package (scripts/setup.sh).

import http from "node:http";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

/** Where Debian installs Chromium; CHROMIUM overrides it. */
export function chromiumPath() {
  const p = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(p)) throw new Error(`${p} is missing: install Debian's chromium package (make test does: scripts/setup.sh)`);
  return p;
}

/**
 * Launches Chromium headless with a fresh profile in a temp dir and no
 * background traffic of its own. resolverRules maps test host names to
 * loopback (--host-resolver-rules), for the DNS rebinding case. Returns the
 * persistent context, Chromium's version and stop(), which also removes the
 * profile.
 */
// Playwright's own limits (30 s to launch, to navigate, to evaluate) are
// reachable by a working Chromium on a loaded 2-core machine; these waits
// end on their events, and this only turns one that never comes into a
// failure.
const HANG_GUARD_MS = 120_000;

export async function launchChromium({ resolverRules } = {}) {
  const profile = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-chromium-"));
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ];
  if (resolverRules) args.push(`--host-resolver-rules=${resolverRules}`);
  // launchPersistentContext is the way playwright takes --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args,
    timeout: HANG_GUARD_MS,
  });
  context.setDefaultTimeout(HANG_GUARD_MS);
  context.setDefaultNavigationTimeout(HANG_GUARD_MS);
  let closed;
  return {
    context,
    version: context.browser()?.version() ?? (await versionOf(context)),
    /** Ends Chromium and removes its profile; later calls wait for the first. */
    stop() {
      closed ??= context.close().then(() => rm(profile, { recursive: true, force: true }));
      return closed;
    },
  };
}

async function versionOf(context) {
  const page = await context.newPage();
  try {
    return await page.evaluate(() => navigator.userAgent.match(/Chrome\/([\d.]+)/)?.[1] ?? "unknown");
  } finally {
    await page.close();
  }
}

/**
 * Every kind of request the hostile page makes, named as the probe path's
 * last segment. carriesOrigin: the browser sends an Origin header with it
 * (so the proxy refused it before Sec-Fetch-Site was checked too).
 */
export const HOSTILE_KINDS = [
  // GET and HEAD without Origin: only Sec-Fetch-Site gives them away.
  { kind: "img", carriesOrigin: false },
  { kind: "script", carriesOrigin: false },
  { kind: "link-stylesheet", carriesOrigin: false },
  { kind: "css-import", carriesOrigin: false },
  { kind: "link-prefetch", carriesOrigin: false },
  { kind: "link-preload", carriesOrigin: false },
  { kind: "video", carriesOrigin: false },
  { kind: "audio", carriesOrigin: false },
  { kind: "css-background", carriesOrigin: false },
  { kind: "iframe", carriesOrigin: false },
  { kind: "object", carriesOrigin: false },
  { kind: "embed", carriesOrigin: false },
  { kind: "get-form", carriesOrigin: false },
  { kind: "navigation", carriesOrigin: false },
  { kind: "window-open", carriesOrigin: false },
  { kind: "no-cors-fetch", carriesOrigin: false },
  // With Origin: CORS requests, POSTs, WebSocket.
  { kind: "module-script", carriesOrigin: true },
  { kind: "cors-fetch", carriesOrigin: true },
  { kind: "cors-post-json", carriesOrigin: true },
  { kind: "xhr", carriesOrigin: true },
  { kind: "event-source", carriesOrigin: true },
  { kind: "no-cors-post", carriesOrigin: true },
  { kind: "post-form", carriesOrigin: true },
  { kind: "beacon", carriesOrigin: true },
  { kind: "a-ping", carriesOrigin: true },
  { kind: "websocket", carriesOrigin: true },
];

// The hostile page: it makes every request in HOSTILE_KINDS at once, at
// cfg.base + kind (HTTP) and cfg.ws + "websocket". Whether each reached the
// proxy is read from the proxy's access log, not from the page: a page
// cannot see the fate of most of them, and that is the point.
const HOSTILE_SCRIPT = String.raw`
const cfg = JSON.parse(document.getElementById("cfg").textContent);
const u = (kind) => cfg.base + kind;
const el = (tag, attrs, parent = document.body) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  parent.appendChild(e);
  return e;
};
const quiet = (p) => p.catch(() => {});
for (const name of ["form-get", "form-post", "ping"]) el("iframe", { name, src: "/blank" });

el("img", { src: u("img") });
el("script", { src: u("script") });
el("script", { type: "module", src: u("module-script") });
el("link", { rel: "stylesheet", href: u("link-stylesheet") }, document.head);
el("style", {}, document.head).textContent = '@import url("' + u("css-import") + '");';
el("link", { rel: "prefetch", href: u("link-prefetch") }, document.head);
el("link", { rel: "preload", as: "image", href: u("link-preload") }, document.head);
el("video", { preload: "auto", src: u("video") });
el("audio", { preload: "auto", src: u("audio") });
el("div", { style: "width:8px;height:8px;background-image:url('" + u("css-background") + "')" });
el("iframe", { src: u("iframe") });
el("object", { data: u("object"), width: "8", height: "8" });
el("embed", { src: u("embed"), width: "8", height: "8" });

const getForm = el("form", { method: "get", action: u("get-form"), target: "form-get" });
el("input", { name: "q", value: "1" }, getForm);
getForm.submit();
const postForm = el("form", { method: "post", action: u("post-form"), target: "form-post", enctype: "text/plain" });
el("input", { name: "q", value: "1" }, postForm);
postForm.submit();
const a = el("a", { href: "/blank?pinged", ping: u("a-ping"), target: "ping" });
a.click();

window.open("/nav?to=" + encodeURIComponent(u("navigation")));
window.open(u("window-open"));

quiet(fetch(u("no-cors-fetch"), { mode: "no-cors" }));
quiet(fetch(u("no-cors-post"), { mode: "no-cors", method: "POST", body: "x" }));
quiet(fetch(u("cors-fetch")));
quiet(fetch(u("cors-post-json"), { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }));
const xhr = new XMLHttpRequest();
xhr.open("GET", u("xhr"));
xhr.send();
const es = new EventSource(u("event-source"));
es.onerror = () => es.close();
navigator.sendBeacon(u("beacon"), "x");

const ws = new WebSocket(cfg.ws + "websocket");
ws.onopen = () => ws.close();
`;

function hostilePage(cfg) {
  // JSON in a script element: nothing in cfg is interpreted as markup.
  const json = JSON.stringify(cfg).replace(/</g, "\\u003c");
  return `<!doctype html><html><head><title>hostile</title>
<script type="application/json" id="cfg">${json}</script></head>
<body><script>${HOSTILE_SCRIPT}</script></body></html>`;
}

/**
 * A web server for the suite's pages, on host (a 127.0.0.0/8 address) and a
 * port the kernel picks:
 *   /hostile?base=URL&ws=URL  the hostile page
 *   /nav?to=URL               navigates itself to URL
 *   /blank                    an empty page
 */
export async function startPageServer(host) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://page.invalid");
    const html = (body) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      res.end(body);
    };
    switch (url.pathname) {
      case "/hostile":
        return html(hostilePage({ base: url.searchParams.get("base"), ws: url.searchParams.get("ws") }));
      case "/nav":
        return html(`<!doctype html><script>location.href = ${JSON.stringify(url.searchParams.get("to")).replace(/</g, "\\u003c")};</script>`);
      case "/blank":
        return html("<!doctype html><title>blank</title>");
      default:
        res.writeHead(404).end();
    }
  });
  server.listen(0, host);
  await once(server, "listening");
  return {
    port: server.address().port,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
