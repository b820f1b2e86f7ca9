// curl, as the Azure REST docs show it, with a dummy key, through the proxy:
// REST text-to-speech and the voices list, on the regional / container paths
// the proxy maps to the custom-domain form.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { startFake, startProxy, stopAll } from "../lib/harness.js";
import { audioBytes, parseWav } from "../lib/audio.js";
import { curlTTS, curlVoices, ssml } from "../lib/clients.js";
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

/** curl with args; returns what --write-out says of the transfer. */
async function curlMeasured(args) {
  const { stdout } = await promisify(execFile)("curl", [
    "--silent", "--show-error", "--noproxy", "*", "--max-time", "60", "--output", "/dev/null",
    "--write-out", "%{http_code} %{http_version} %{size_upload}", ...args,
  ]);
  const [status, httpVersion, uploaded] = stdout.trim().split(" ");
  return { status: Number(status), httpVersion, uploaded: Number(uploaded) };
}

// curl --http2 on an http:// URL offers an h2c upgrade; the proxy declines
// it and answers over HTTP/1.1, as a plain Go server does.
test("curl --http2 (h2c upgrade offer): answered over HTTP/1.1", async () => {
  await fake.reset();
  const res = await curlMeasured(["--http2", `${proxy.http}/cognitiveservices/voices/list`]);
  assert.deepEqual([res.status, res.httpVersion], [200, "1.1"]);
  const [up] = await fake.requests();
  assert.equal(up.header.Upgrade, undefined, "no upgrade offer reached the fake");
});

// curl sends Expect: 100-continue for uploads over 1 KiB and waits for the
// server's word before sending the body. The fake refuses SSML over 1 MiB at
// once: curl gets the 413 without having sent a byte of its 5 MiB; a small
// upload is asked for and goes through. --expect100-timeout 60: curl does
// not send on its own while the proxy decides.
test("curl upload with Expect: 100-continue: refused at once without sending, or asked for", async () => {
  await fake.reset();
  const dir = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-expect-"));
  try {
    const big = path.join(dir, "big.ssml");
    await writeFile(big, Buffer.alloc(5 << 20, " "));
    const tts = ["-X", "POST", `${proxy.http}/cognitiveservices/v1`, "-H", "Content-Type: application/ssml+xml",
      "-H", "X-Microsoft-OutputFormat: riff-16khz-16bit-mono-pcm", "-H", "Ocp-Apim-Subscription-Key: dummy", "--expect100-timeout", "60"];
    const refused = await curlMeasured([...tts, "--data-binary", `@${big}`]);
    assert.deepEqual([refused.status, refused.uploaded], [413, 0], "curl got the refusal before it sent its body");

    const small = path.join(dir, "small.ssml");
    await writeFile(small, ssml("An upload just over a kibibyte, asked for by the server. ".repeat(20)));
    const accepted = await curlMeasured([...tts, "--data-binary", `@${small}`, "-H", "Expect: 100-continue"]);
    assert.equal(accepted.status, 200);
    assert.ok(accepted.uploaded > 1024, `uploaded ${accepted.uploaded} bytes`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the responses", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
