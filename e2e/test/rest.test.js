// curl, as the Azure REST docs show it, with a dummy key, through the proxy:
// REST text-to-speech and the voices list, on the regional / container paths
// the proxy maps to the custom-domain form.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startFake, startProxy, stopAll } from "../lib/harness.js";
import { audioBytes, parseWav } from "../lib/audio.js";
import { curlTTS, curlVoices } from "../lib/clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

let fake, proxy;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer"]);
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake));

test("curl POST /cognitiveservices/v1 (riff-16khz-16bit-mono-pcm): a playable WAV", async () => {
  await fake.reset();
  const text = "A WAV file from curl, through entraproxy.";
  const res = await curlTTS(proxy.http, text);
  seen.add("wav", res.body);
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(res.contentType, "audio/wav");
  const wav = parseWav(res.body);
  assert.deepEqual(
    { audioFormat: wav.audioFormat, channels: wav.channels, sampleRate: wav.sampleRate, bitsPerSample: wav.bitsPerSample, byteRate: wav.byteRate, blockAlign: wav.blockAlign },
    { audioFormat: 1, channels: 1, sampleRate: 16000, bitsPerSample: 16, byteRate: 32000, blockAlign: 2 },
  );
  assert.equal(wav.dataBytes, audioBytes(text));
  assert.ok(res.body.subarray(wav.dataOffset).some((b) => b !== 0), "the data is sound, not silence");

  const [up] = await fake.requests();
  assert.deepEqual([up.method, up.path, up.status, up.form], ["POST", "/tts/cognitiveservices/v1", 200, "bearer"]);
  assert.deepEqual(up.header["X-Microsoft-Outputformat"], ["riff-16khz-16bit-mono-pcm"]);
  assert.deepEqual(up.header["User-Agent"], ["entraproxy-e2e-curl"]);
  assert.equal(up.header["Ocp-Apim-Subscription-Key"], undefined);
});

test("curl GET /cognitiveservices/voices/list: a JSON array of voices", async () => {
  await fake.reset();
  const res = await curlVoices(proxy.http);
  seen.add("voices", res.body);
  assert.equal(res.status, 200);
  assert.match(res.contentType, /^application\/json/);
  const voices = JSON.parse(res.body);
  assert.ok(Array.isArray(voices) && voices.length > 0);
  assert.ok(voices.some((v) => v.ShortName === "en-US-AvaMultilingualNeural"));
  const [up] = await fake.requests();
  assert.deepEqual([up.path, up.status], ["/tts/cognitiveservices/voices/list", 200]);
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the responses", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
