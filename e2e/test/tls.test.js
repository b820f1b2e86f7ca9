// The proxy serving HTTPS and WSS from ENTRAPROXY_TLS_CERT_FILE /
// ENTRAPROXY_TLS_KEY_FILE in a Kubernetes-style Secret volume, with real
// clients that trust a CA this test makes (NODE_EXTRA_CA_CERTS, curl
// --cacert). Mid-run the volume is renewed (the ..data symlink swap) while a
// Speech synthesizer holds its WebSocket open: new connections get the new
// certificate, the open session keeps going.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startFake, startProxy, stopAll, DUMMY_KEY } from "../lib/harness.js";
import { audioBytes, WAV_HEADER_BYTES } from "../lib/audio.js";
import { curl, ssml } from "../lib/clients.js";
import { startClientProcess } from "../lib/client-process.js";
import { makeCA, secretVolume } from "../lib/tlsca.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

// fakeazure.OpenAIReply
const REPLY = "Hello from the fake Azure OpenAI deployment.";
let fake, proxy, ca, volume, trusting, untrusting, first, renewed;
const seen = new Seen();

before(async () => {
  ca = await makeCA();
  volume = await secretVolume();
  first = await ca.issue("entraproxy e2e first");
  renewed = await ca.issue("entraproxy e2e renewed");
  await volume.write(first);
  fake = await startFake(["-auth", "bearer"]);
  proxy = await startProxy(fake, { env: { ENTRAPROXY_TLS_CERT_FILE: volume.certFile, ENTRAPROXY_TLS_KEY_FILE: volume.keyFile } });
  trusting = startClientProcess({ NODE_EXTRA_CA_CERTS: ca.caFile });
  untrusting = startClientProcess({ NODE_EXTRA_CA_CERTS: "" });
});
after(() => stopAll(trusting, untrusting, proxy, fake, volume, ca));

const https = () => `https://${proxy.listen}`;
const wss = () => `wss://${proxy.listen}`;
const [host, port] = [() => proxy.listen.split(":")[0], () => Number(proxy.listen.split(":")[1])];

async function ok(client, op, args) {
  const reply = await client.call(op, args);
  assert.ok(reply.ok, `${op}: ${reply.error}`);
  seen.add(op, reply.result);
  return reply.result;
}

test("the ready line says TLS and points SDKs at wss:// and https://", () => {
  assert.equal(proxy.ready.tls, true);
  assert.match(proxy.ready.hint, /wss:\/\//);
  assert.match(proxy.ready.hint, /https:\/\//);
});

test("AzureOpenAI over https:// (trusting the test CA): the reply; untrusting: a certificate error", async () => {
  await fake.reset();
  assert.equal(await ok(trusting, "openai-chat", { endpoint: https() }), REPLY);
  const [up] = await fake.requests();
  assert.deepEqual([up.path, up.status, up.form], ["/openai/deployments/gpt-4o/chat/completions", 200, "bearer"]);

  const refused = await untrusting.call("openai-chat", { endpoint: https() });
  assert.equal(refused.ok, false);
  assert.match(refused.error, /^APIConnectionError: .* <- .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

// The openai package's realtime client insists on wss:// (against a plain
// listener it fails with EPROTO); with TLS on the listener it works.
test("openai realtime client over wss:// (trusting the test CA): the reply, with the proxy's token; untrusting: a certificate error", async () => {
  await fake.reset();
  assert.equal(await ok(trusting, "openai-realtime", { endpoint: https() }), REPLY);
  const [up] = (await fake.requests()).filter((r) => r.path.endsWith("/realtime"));
  assert.deepEqual([up.path, up.status, up.form], ["/openai/v1/realtime", 101, "bearer"]);

  const refused = await untrusting.call("openai-realtime", { endpoint: https() });
  assert.equal(refused.ok, false);
  assert.match(refused.error, /^OpenAIRealtimeError: .* <- .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

test("curl --cacert: REST TTS over https://", async () => {
  await fake.reset();
  const text = "REST synthesis over TLS.";
  const res = await curl(["--cacert", ca.caFile, "-X", "POST", `${https()}/cognitiveservices/v1`,
    "-H", `Ocp-Apim-Subscription-Key: ${DUMMY_KEY}`, "-H", "Content-Type: application/ssml+xml",
    "-H", "X-Microsoft-OutputFormat: riff-16khz-16bit-mono-pcm", "--data-binary", ssml(text)]);
  seen.add("wav", res.body);
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(res.body.subarray(0, 4).toString(), "RIFF");
  const [up] = await fake.requests();
  assert.deepEqual([up.path, up.status], ["/tts/cognitiveservices/v1", 200]);
});

test("Speech SDK over wss://, the certificate renewed mid-session: the session survives, new connections get the new certificate", async () => {
  await fake.reset();
  assert.equal(await ok(trusting, "peer-serial", { host: host(), port: port() }), first.serial);

  await ok(trusting, "speech-open", { ws: wss() });
  const before = "Before the renewal.";
  const r1 = await ok(trusting, "speak", { text: before });
  assert.equal(r1.reason, "SynthesizingAudioCompleted", JSON.stringify(r1.cancellation));
  assert.equal(r1.bytes, WAV_HEADER_BYTES + audioBytes(before));

  await volume.write(renewed);
  assert.equal(await ok(trusting, "peer-serial", { host: host(), port: port() }), renewed.serial, "a new connection gets the renewed certificate");
  await proxy.waitLogged("tls certificate reloaded");

  const afterText = "After the renewal, on the same WebSocket.";
  const r2 = await ok(trusting, "speak", { text: afterText });
  assert.equal(r2.reason, "SynthesizingAudioCompleted", JSON.stringify(r2.cancellation));
  assert.equal(r2.bytes, WAV_HEADER_BYTES + audioBytes(afterText));
  await ok(trusting, "speech-close");

  const ups = (await fake.requests()).filter((r) => r.websocket);
  assert.deepEqual(ups.map((r) => `${r.path} ${r.status}`), ["/tts/cognitiveservices/websocket/v1 101"],
    "one WebSocket for both syntheses: the renewal did not cut the session");
  const reload = proxy.logs().find((l) => l.msg === "tls certificate reloaded");
  assert.equal(reload.serial.toUpperCase(), renewed.serial);
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the responses", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
