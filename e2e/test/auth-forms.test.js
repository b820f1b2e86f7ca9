// The aad form, "Authorization: Bearer aad#<resource id>#<jwt>": the fake
// accepts only it, and the proxy gets its tokens from the Azure CLI (the
// fake's az, wrapped so the test sees every token it printed).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { recordingAz, startFake, startProxy, stopAll, tempDir } from "../lib/harness.js";
import { audioBytes, parseWav, WAV_HEADER_BYTES } from "../lib/audio.js";
import { cancellation, curlTTS, hostConfig, recognizeWav, sdk, speak, synthesizeOnce, synthesizer } from "../lib/clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

let fake, azHome, az;
const proxies = [];
const seen = new Seen();

before(async () => {
  azHome = await tempDir("entraproxy-e2e-fakeaz-");
  fake = await startFake(["-auth", "aad", "-az-dir", azHome.dir, "-phrase", "Recognized with the aad form."]);
  az = await recordingAz(path.join(fake.info.az_dir, "az"));
});
after(() => stopAll(...proxies, fake, az, azHome));

async function proxyWith(env) {
  const p = await startProxy(fake, { credential: "azure-cli", az, env });
  proxies.push(p);
  return p;
}

function assertSynthesized(result, text) {
  seen.add("synthesis", result.audioData);
  assert.equal(sdk.ResultReason[result.reason], "SynthesizingAudioCompleted", JSON.stringify(cancellation(result)));
  assert.equal(result.audioData.byteLength, WAV_HEADER_BYTES + audioBytes(text));
}

const summary = async () => (await fake.requests()).map((r) => `${r.form || "-"} ${r.status}${r.reject ? " " + r.reject : ""}`);
const detail = async () => JSON.stringify((await fake.requests()).map((r) => `${r.path} ${r.form} ${r.status} ${r.tokenSeq}`));

test("auto + ENTRAPROXY_RESOURCE_ID: bearer gets 401, one retry in the aad form succeeds and is remembered", async () => {
  const proxy = await proxyWith({ ENTRAPROXY_RESOURCE_ID: fake.info.resource_id });
  assert.equal(proxy.ready.credential, "AzureCLICredential");
  await fake.reset();

  const text = "First try learns the form.";
  assertSynthesized(await synthesizeOnce(hostConfig(proxy.ws), text), text);
  assert.deepEqual(await summary(), ["bearer 401 wrong_form", "aad 101"], "bearer first, then exactly one retry in the aad form");
  const [, retry] = await fake.requests();
  assert.equal(retry.header.Authorization[0], `Bearer aad#${fake.info.resource_id}#eyJ…(redacted)`);
  assert.ok(retry.tokenSeq > 0);
  const metrics = await (await fetch(`${proxy.admin}/metrics`)).text();
  assert.match(metrics, /^entraproxy_auth_retries_total\{form="aad"\} 1$/m, "the proxy counted one retry in the aad form");
  await proxy.waitLogged("websocket", 1); // the session has ended

  // Remembered per upstream host: later connections go straight to aad, for
  // WebSocket and HTTP alike.
  await fake.reset();
  const rec = await recognizeWav(hostConfig(proxy.ws));
  seen.add("recognition", rec.json);
  assert.equal(sdk.ResultReason[rec.reason], "RecognizedSpeech", JSON.stringify(cancellation(rec)));
  assert.equal(rec.text, "Recognized with the aad form.");
  const wav = await curlTTS(proxy.http, "REST in the aad form");
  seen.add("curl body", wav.body);
  assert.equal(wav.status, 200, wav.body.toString());
  assert.equal(parseWav(wav.body).dataBytes, audioBytes("REST in the aad form"));
  assert.deepEqual(await summary(), ["aad 101", "aad 200"], await detail());
});

// The form is learned when the first WebSocket session ENDS, not when its
// handshake succeeds (proxy/websocket.go: learn() runs after attempt()
// returns a finished session). A synthesizer keeps its connection for its
// whole life, so every other connection opened meanwhile pays a 401 first.
test("auto + ENTRAPROXY_RESOURCE_ID: the aad form is remembered while the first session is still open", async () => {
  const proxy = await proxyWith({ ENTRAPROXY_RESOURCE_ID: fake.info.resource_id });
  await fake.reset();
  const first = synthesizer(hostConfig(proxy.ws));
  try {
    assertSynthesized(await speak(first, "A long lived synthesizer."), "A long lived synthesizer.");
    assert.deepEqual(await summary(), ["bearer 401 wrong_form", "aad 101"]);
    await fake.reset();
    const text = "A second connection meanwhile.";
    assertSynthesized(await synthesizeOnce(hostConfig(proxy.ws), text), text);
    assert.deepEqual(await summary(), ["aad 101"],
      "a connection opened while the first session is live must use the learned aad form; " + (await detail()));
  } finally {
    first.close();
  }
});

test("auto + ENTRAPROXY_RESOURCE_ID: REST TTS learns the aad form too (the SSML body is replayed)", async () => {
  const proxy = await proxyWith({ ENTRAPROXY_RESOURCE_ID: fake.info.resource_id });
  await fake.reset();
  const text = "The retry sends the SSML again.";
  const wav = await curlTTS(proxy.http, text);
  seen.add("curl body", wav.body);
  assert.equal(wav.status, 200, wav.body.toString());
  assert.equal(parseWav(wav.body).dataBytes, audioBytes(text));
  assert.deepEqual(await summary(), ["bearer 401 wrong_form", "aad 200"]);
});

test("ENTRAPROXY_AUTH_FORMAT=aad: every request in the aad form, no 401", async () => {
  const proxy = await proxyWith({ ENTRAPROXY_AUTH_FORMAT: "aad", ENTRAPROXY_RESOURCE_ID: fake.info.resource_id });
  await fake.reset();
  const text = "Straight to the aad form.";
  assertSynthesized(await synthesizeOnce(hostConfig(proxy.ws), text), text);
  const wav = await curlTTS(proxy.http, text);
  seen.add("curl body", wav.body);
  assert.equal(wav.status, 200);
  assert.deepEqual(await summary(), ["aad 101", "aad 200"]);
  assert.deepEqual((await fake.stats()).rejections, {});
});

test("control: auto without a resource id cannot make the aad form; the fake's 401 comes back", async () => {
  const proxy = await proxyWith({});
  await fake.reset();
  const result = await synthesizeOnce(hostConfig(proxy.ws), "No resource id.");
  const why = cancellation(result);
  assert.equal(sdk.ResultReason[result.reason], "Canceled");
  assert.match(why.details, /401/, why.details);
  seen.add("cancellation", why.details);
  // Bearer, then the one retry with a fresh token, still bearer: refused both times.
  const forms = await summary();
  assert.ok(forms.length >= 2 && forms.every((f) => f === "bearer 401 wrong_form"), JSON.stringify(forms));

  const wav = await curlTTS(proxy.http, "No resource id.");
  seen.add("curl 401 body", wav.body);
  assert.equal(wav.status, 401);
  assert.match(wav.body.toString(), /fakeazure: wrong_form/);
});

test("secrets: no token the fake az printed, no JWT, no dummy key in any proxy's logs or the results", async () => {
  const tokens = await az.tokens();
  assert.ok(tokens.length >= proxies.length, `az ran ${tokens.length} times for ${proxies.length} proxies`);
  for (const p of proxies) assertNoSecrets({ logs: p.rawLogs(), seen, tokens });
});
