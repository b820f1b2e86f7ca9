// The openai package's realtime clients through the proxy to the fake's
// realtime WebSocket endpoint. The browser client (OpenAIRealtimeWebSocket)
// cannot set headers, so it offers its key as a subprotocol beside
// "realtime": ["realtime", "openai-insecure-api-key.<key>"]. The proxy must
// keep that key from the upstream (the fake refuses any key, there too),
// and in gateway mode accept it as the gateway key.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { AzureOpenAI, OpenAI } from "openai";
import { OpenAIRealtimeWebSocket } from "openai/realtime/websocket";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import WebSocket from "ws";
import { DUMMY_KEY, startFake, startProxy, stopAll } from "../lib/harness.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

// fakeazure.OpenAIReply
const REPLY = "Hello from the fake Azure OpenAI deployment.";
const GATEWAY_KEY = "gateway-key-ENTRAPROXY-E2E";
let fake, proxy, gateway;
const seen = new Seen();

// The browser client uses the global WebSocket, which Node 20 lacks: the ws
// package stands in, as a browser's would. The client always asks for wss://;
// these proxies listen without TLS, so the connection is made in plain TCP
// to the same host and port, and the URL, the subprotocols and the headers
// stay the client's.
class BrowserLikeWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { createConnection: (opts) => net.connect({ host: opts.host, port: opts.port }) });
  }
}
globalThis.WebSocket = BrowserLikeWebSocket;

before(async () => {
  fake = await startFake();
  proxy = await startProxy(fake);
  gateway = await startProxy(fake, { env: { ENTRAPROXY_INBOUND_KEYS: GATEWAY_KEY } });
});
after(() => {
  delete globalThis.WebSocket;
  return stopAll(gateway, proxy, fake);
});

/**
 * Holds one text conversation on rt: waits for session.created, asks for a
 * response and returns its text, assembled from the deltas. Rejects on an
 * error event or a socket that closes first.
 */
function converse(rt, socket) {
  return new Promise((resolve, reject) => {
    let text = "";
    rt.on("error", (err) => reject(err));
    rt.on("event", (ev) => {
      seen.add(`realtime ${ev.type}`, ev);
      if (ev.type === "session.created") {
        rt.send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text: "Say hello." }] } });
        rt.send({ type: "response.create" });
      } else if (ev.type === "response.output_text.delta") {
        text += ev.delta;
      } else if (ev.type === "response.done") {
        rt.close();
        resolve(text);
      }
    });
    socket.addEventListener("close", (ev) => reject(new Error(`socket closed before the response: ${ev.code}`)));
  });
}

/** The realtime handshakes the fake has seen since its last reset. */
async function realtimeRequests() {
  return (await fake.requests()).filter((r) => r.path.endsWith("/realtime"));
}

test("browser realtime client (key as a subprotocol): the upstream is offered realtime only, with the proxy's token", async () => {
  await fake.reset();
  const client = new OpenAI({ apiKey: DUMMY_KEY, baseURL: `${proxy.http}/openai/v1`, dangerouslyAllowBrowser: true });
  const rt = new OpenAIRealtimeWebSocket({ model: "gpt-realtime" }, client);
  assert.equal(rt.socket instanceof BrowserLikeWebSocket, true, "the client uses the global WebSocket");
  assert.equal(await converse(rt, rt.socket), REPLY);

  const [up] = await realtimeRequests();
  assert.equal(up.status, 101, `the fake refused: ${up.reject}`);
  assert.deepEqual(up.subprotocols, ["realtime"], "the key subprotocol was removed, realtime kept");
  assert.equal(up.subprotocol, "realtime");
  assert.equal(up.form, "bearer");
  assert.equal(up.query, "model=gpt-realtime");
});

test("gateway mode: the browser realtime client's key setting is the gateway key", async () => {
  await fake.reset();
  const client = new OpenAI({ apiKey: GATEWAY_KEY, baseURL: `${gateway.http}/openai/v1`, dangerouslyAllowBrowser: true });
  const rt = new OpenAIRealtimeWebSocket({ model: "gpt-realtime" }, client);
  assert.equal(await converse(rt, rt.socket), REPLY);
  const [up] = await realtimeRequests();
  assert.equal(up.status, 101);
  assert.deepEqual(up.subprotocols, ["realtime"]);

  await fake.reset();
  const wrong = new OpenAIRealtimeWebSocket({ model: "gpt-realtime" }, new OpenAI({ apiKey: DUMMY_KEY, baseURL: `${gateway.http}/openai/v1`, dangerouslyAllowBrowser: true }));
  wrong.on("error", (err) => seen.add("gateway refusal", err.message));
  const closed = await new Promise((resolve) => wrong.socket.addEventListener("close", (ev) => resolve(ev)));
  assert.equal(closed.code, 1006, "the handshake was refused");
  assert.equal((await realtimeRequests()).length, 0, "nothing reached the fake");
});

test("Node realtime client (Authorization header) and Azure realtime client (api-key in the query)", async () => {
  await fake.reset();
  // OpenAIRealtimeWS sends Authorization: Bearer <key>; the options reach ws.
  const node = new OpenAIRealtimeWS(
    { model: "gpt-realtime", options: { createConnection: (opts) => net.connect({ host: opts.host, port: opts.port }) } },
    new OpenAI({ apiKey: DUMMY_KEY, baseURL: `${proxy.http}/openai/v1` }),
  );
  assert.equal(await converse(node, node.socket), REPLY);

  // The Azure flavour of the browser client puts api-key in the query.
  const azure = new AzureOpenAI({ endpoint: proxy.http, apiKey: DUMMY_KEY, apiVersion: "2025-04-01-preview", deployment: "gpt-realtime", dangerouslyAllowBrowser: true });
  const rt = await OpenAIRealtimeWebSocket.azure(azure);
  assert.equal(await converse(rt, rt.socket), REPLY);

  const ups = await realtimeRequests();
  assert.equal(ups.length, 2);
  for (const up of ups) {
    assert.equal(up.status, 101, `the fake refused: ${up.reject}`);
    assert.equal(up.form, "bearer");
  }
  assert.equal(ups[1].path, "/openai/realtime");
  assert.equal(ups[1].query, "api-version=2025-04-01-preview&deployment=gpt-realtime", "api-key removed from the query");
});

// The upstream's 101 reaches the client with its headers: both session
// cookies the fake sets and Azure's apim-request-id.
test("the upstream's 101 headers reach the client (two Set-Cookie, apim-request-id)", async () => {
  await fake.reset();
  const socket = new WebSocket(`${proxy.ws}/openai/v1/realtime?model=gpt-realtime`, ["realtime"], { headers: { "api-key": DUMMY_KEY } });
  const [res] = await new Promise((resolve, reject) => {
    socket.once("upgrade", (r) => resolve([r]));
    socket.once("error", reject);
  });
  socket.close();
  const cookies = res.headers["set-cookie"] ?? [];
  assert.equal(cookies.length, 2, `Set-Cookie: ${JSON.stringify(cookies)}`);
  assert.match(cookies[0], /^ARRAffinity=/);
  assert.match(cookies[1], /^realtime-session=/);
  assert.match(res.headers["apim-request-id"] ?? "", /^[0-9a-f-]{36}$/);
  assert.equal(res.headers["sec-websocket-protocol"], "realtime");
});

test("secrets: no issued token, JWT or key in the proxies' logs or what the clients got", async () => {
  const tokens = [...(await proxy.issuedTokens()), ...(await gateway.issuedTokens())];
  assertNoSecrets({ logs: [...proxy.rawLogs(), ...gateway.rawLogs()], seen, tokens });
  for (const line of [...proxy.rawLogs(), ...gateway.rawLogs()]) {
    assert.ok(!line.includes(GATEWAY_KEY), "a log line holds the gateway key");
  }
});
