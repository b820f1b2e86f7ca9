// The Speech SDK for Java (com.microsoft.cognitiveservices.speech:client-sdk
// 1.50.0 from Maven Central, the native core on Linux), with the README's one
// line, SpeechConfig.fromHost(new URI("ws://proxy"), "dummy"): a synthesis and
// a recognition through the proxy. e2e/java/Recipe.java is the app; Maven only
// fetches the SDK's jars.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { DUMMY_KEY, repoRoot, startFake, startProxy, stopAll } from "../lib/harness.js";
import { audioBytes, toneWav } from "../lib/audio.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

const execFileP = promisify(execFile);
const javaDir = path.join(repoRoot, "e2e", "java");
const PHRASE = "The Java Speech SDK, through the proxy.";
// The native SDK's WAV header: a WAVEFORMATEX fmt chunk (18 bytes), so 46
// bytes, not the 44 the JavaScript SDK writes.
const NATIVE_WAV_HEADER_BYTES = 46;
let fake, proxy, tmp;
let unavailable; // why Maven could not fetch the SDK, when it could not
const seen = new Seen();

// What Maven prints when the repository cannot give it an artifact (no
// network to Maven Central, a mirror without the SDK): then the tests are
// skipped with that line. Any other failure fails them.
const NOT_SERVED = /Could not (resolve|transfer|find artifact)|UnknownHost|Connect(ion)? (refused|timed out)|Network is unreachable/i;

before(async () => {
  try {
    await execFileP("mvn", ["-q", "-B", "-Dstyle.color=never", "-f", path.join(javaDir, "pom.xml"),
      "dependency:copy-dependencies", "-DoutputDirectory=target/lib"], { timeout: 240_000 }); // a hang guard: downloads on a fresh machine
  } catch (err) {
    const out = `${err.stdout ?? ""}${err.stderr ?? ""}`;
    const line = out.split("\n").find((l) => NOT_SERVED.test(l));
    if (line === undefined) throw new Error(`mvn (fetching the Java Speech SDK): ${out || err.message}`);
    unavailable = `Maven could not fetch com.microsoft.cognitiveservices.speech:client-sdk: ${line.trim()}`;
    return;
  }
  tmp = await mkdtemp(path.join(tmpdir(), "entraproxy-e2e-java-"));
  fake = await startFake(["-auth", "bearer", "-phrase", PHRASE]);
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake, tmp && (() => rm(tmp, { recursive: true, force: true }))));

test("Java SpeechConfig.fromHost(ws://proxy): SynthesizingAudioCompleted, then RecognizedSpeech", async (t) => {
  if (unavailable) return t.skip(unavailable);
  await fake.reset();
  const wav = path.join(tmp, "tone.wav");
  await writeFile(wav, toneWav(1.5));
  const text = "Hello from the Java Speech SDK.";
  const { stdout } = await execFileP("java", ["-cp", path.join(javaDir, "target", "lib", "*"), path.join(javaDir, "Recipe.java"),
    proxy.ws, DUMMY_KEY, text, wav], { timeout: 120_000 }) // a hang guard: a JVM and the native SDK on a loaded machine
    .catch((err) => { throw new Error(`java Recipe.java: ${err.message}\n${err.stdout}\n${err.stderr}`); });
  seen.add("java output", stdout);
  const [synthesis, recognition] = stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(synthesis, { kind: "synthesis", reason: "SynthesizingAudioCompleted", value: String(NATIVE_WAV_HEADER_BYTES + audioBytes(text)), details: "" });
  assert.deepEqual(recognition, { kind: "recognition", reason: "RecognizedSpeech", value: PHRASE, details: "" });

  const ups = await fake.requests();
  assert.deepEqual(ups.map((r) => `${r.path} ${r.status} ${r.form}`), [
    "/tts/cognitiveservices/websocket/v1 101 bearer",
    "/stt/speech/recognition/interactive/cognitiveservices/v1 101 bearer",
  ], "the regional host-mode paths, mapped by the proxy");
  for (const up of ups) {
    assert.match(up.header["User-Agent"][0], /^SpeechSDK-Java\/1\.50\.0 /);
    assert.equal(up.header["Ocp-Apim-Subscription-Key"], undefined, "the dummy key was stripped");
  }
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the client's output", async (t) => {
  if (unavailable) return t.skip(unavailable);
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
