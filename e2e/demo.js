// make demo: try entraproxy without Azure. Starts the fake Azure (Entra ID
// only: it refuses keys) and the proxy in front of it, runs one synthesis and
// one recognition with the real Speech SDK and a dummy key, shows what
// crossed the proxy, and stops everything.

import { writeFile } from "node:fs/promises";
import path from "node:path";
import { DUMMY_KEY, repoRoot, startFake, startProxy, stopAll } from "./lib/harness.js";
import { parseWav, toneWav } from "./lib/audio.js";
import { cancellation, hostConfig, recognizeWav, sdk, synthesizeOnce } from "./lib/clients.js";

const PHRASE = "Hello from the entraproxy demo.";
const TEXT = "Entraproxy put an Entra ID token on this request.";
const out = path.join(repoRoot, "bin", "demo.wav");

let fake, proxy;
const stop = () => stopAll(proxy, fake);
process.on("SIGINT", () => stop().finally(() => process.exit(130)));

try {
  fake = await startFake(["-auth", "bearer", "-phrase", PHRASE]);
  proxy = await startProxy(fake);
  console.log(`fake Azure   ${fake.url}  (accepts Entra ID bearer tokens only; refuses any key)`);
  console.log(`entraproxy   ${proxy.http}  (token from ${proxy.ready.credential}, auth format ${proxy.ready.auth_format})`);
  console.log(`client       Speech SDK 1.52: SpeechConfig.fromHost(new URL("${proxy.ws}"), "${DUMMY_KEY}")\n`);

  const synth = await synthesizeOnce(hostConfig(proxy.ws), TEXT);
  if (synth.reason !== sdk.ResultReason.SynthesizingAudioCompleted) throw new Error(`synthesis: ${JSON.stringify(cancellation(synth))}`);
  await writeFile(out, Buffer.from(synth.audioData));
  const wav = parseWav(synth.audioData);
  console.log(`1. speakTextAsync(${JSON.stringify(TEXT)})`);
  console.log(`   -> ${sdk.ResultReason[synth.reason]}, ${synth.audioData.byteLength} bytes, ` +
    `${wav.sampleRate} Hz ${wav.bitsPerSample}-bit ${wav.channels === 1 ? "mono" : wav.channels + " ch"}, ${(wav.dataBytes / wav.byteRate).toFixed(2)} s -> ${path.relative(process.cwd(), out)}`);

  const rec = await recognizeWav(hostConfig(proxy.ws), toneWav(1.5));
  if (rec.reason !== sdk.ResultReason.RecognizedSpeech) throw new Error(`recognition: ${JSON.stringify(cancellation(rec))}`);
  console.log(`2. recognizeOnceAsync(push stream of a 1.5 s 16 kHz WAV)`);
  console.log(`   -> ${sdk.ResultReason[rec.reason]}: ${JSON.stringify(rec.text)}\n`);

  console.log("What crossed the proxy, as the upstream saw it (the fake redacts the token):");
  for (const r of await fake.requests()) {
    console.log(`  ${r.method} ${r.path}${r.query ? "?" + r.query : ""}  -> ${r.status}${r.websocket ? " (WebSocket)" : ""}`);
    console.log(`    Host: ${r.host}`);
    for (const [name, values] of Object.entries(r.header).sort()) {
      if (/^Sec-Websocket-(Key|Version|Extensions)$/.test(name)) continue;
      for (const v of values) console.log(`    ${name}: ${v}`);
    }
  }
  const stats = await fake.stats();
  console.log(`\nThe SDK sent "${DUMMY_KEY}" as Ocp-Apim-Subscription-Key (header and query); the upstream saw no key, ` +
    `one Authorization header, ${stats.issued} token(s) issued, rejections: ${JSON.stringify(stats.rejections)}.`);
  console.log("\nThe proxy's own log lines (ENTRAPROXY_LOG_FORMAT=json):");
  for (const l of proxy.logs().filter((l) => ["request", "websocket", "token acquired"].includes(l.msg))) {
    const { time, level, ...rest } = l;
    console.log("  " + JSON.stringify(rest));
  }
} catch (err) {
  console.error(`demo failed: ${err.message}`);
  if (proxy) console.error(proxy.rawLogs().slice(-20).join("\n"));
  process.exitCode = 1;
} finally {
  await stop();
  console.log("\nstopped the proxy and the fake Azure.");
}
