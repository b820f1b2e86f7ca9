// The redirect mode: the custom domain answers the TTS WebSocket upgrade
// with 301 (and REST TTS with 307) to the regional host, as the Speech
// service may (docs/SPEECH-SDK-WIRE.md). The proxy must follow it itself,
// with the token again, and only to ENTRAPROXY_REDIRECT_HOSTS.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startFake, startProxy, stopAll } from "../lib/harness.js";
import { audioBytes, parseWav, WAV_HEADER_BYTES } from "../lib/audio.js";
import { cancellation, curlTTS, hostConfig, sdk, synthesizeOnce } from "../lib/clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

let fake, proxy, strict;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer", "-redirect", "-redirect-rest"]);
  proxy = await startProxy(fake, { env: { ENTRAPROXY_REDIRECT_HOSTS: fake.info.regional } });
  strict = await startProxy(fake); // default ENTRAPROXY_REDIRECT_HOSTS: Azure's domains only
});
after(() => stopAll(proxy, strict, fake));

test("TTS fromHost through a 301: the proxy follows it to the allowed regional host with the token", async () => {
  await fake.reset();
  const text = "Redirected to the regional host.";
  const result = await synthesizeOnce(hostConfig(proxy.ws), text);
  seen.add("synthesis", result.audioData);
  assert.equal(sdk.ResultReason[result.reason], "SynthesizingAudioCompleted", JSON.stringify(cancellation(result)));
  assert.equal(result.audioData.byteLength, WAV_HEADER_BYTES + audioBytes(text));

  const [custom, regional, ...more] = await fake.requests();
  assert.equal(more.length, 0);
  assert.deepEqual([custom.listener, custom.path, custom.status], ["custom", "/tts/cognitiveservices/websocket/v1", 301]);
  assert.deepEqual([regional.listener, regional.path, regional.status], ["regional", "/cognitiveservices/websocket/v1", 101]);
  assert.equal(regional.host, fake.info.regional, "Host names the regional listener");
  assert.equal(regional.form, "bearer");
  assert.ok(regional.tokenSeq > 0, "the regional listener got a token the fake issued");
  assert.deepEqual(regional.header.Authorization, ["Bearer eyJ…(redacted)"]);
  assert.match(regional.query, new RegExp(`Ocp-Apim-Custom-Domain-Name=${encodeURIComponent(fake.info.custom_host)}`));
  assert.doesNotMatch(regional.query, /Subscription-Key/i);
  assert.equal(regional.reject, undefined);
});

test("REST TTS with curl through a 307: the SSML is sent again to the regional host", async () => {
  await fake.reset();
  const text = "REST redirected.";
  const res = await curlTTS(proxy.http, text);
  seen.add("curl body", res.body);
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(parseWav(res.body).dataBytes, audioBytes(text));
  const [custom, regional] = await fake.requests();
  assert.deepEqual([custom.status, regional.listener, regional.status, regional.form], [307, "regional", 200, "bearer"]);
});

test("control: a redirect to a host outside ENTRAPROXY_REDIRECT_HOSTS is refused with 502 redirect_not_allowed, never passed to the client", async () => {
  await fake.reset();
  const res = await curlTTS(strict.http, "Not allowed.");
  seen.add("curl 502 body", res.body);
  assert.equal(res.status, 502);
  assert.equal(JSON.parse(res.body).error.code, "redirect_not_allowed");

  const result = await synthesizeOnce(hostConfig(strict.ws), "Not allowed.");
  const why = cancellation(result);
  seen.add("cancellation", why?.details);
  assert.equal(sdk.ResultReason[result.reason], "Canceled");
  assert.match(why.details, /502/);
  assert.ok((await fake.requests()).every((r) => r.listener === "custom"), "the regional listener was never reached");
});

test("secrets: no issued token, JWT or dummy key in the proxies' logs or the results", async () => {
  for (const p of [proxy, strict]) assertNoSecrets({ logs: p.rawLogs(), seen, tokens: await p.issuedTokens() });
});
