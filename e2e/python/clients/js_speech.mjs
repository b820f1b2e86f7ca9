// The JavaScript Speech SDK (the e2e suite's npm package) as an app uses it,
// for the Python suite's error table: one synthesis and one recognition with
// SpeechConfig.fromHost(BASE, key); prints what the app reads as one JSON line.
//
//   node js_speech.mjs BASE KEY WAV
import { readFileSync } from "node:fs";
import sdk from "microsoft-cognitiveservices-speech-sdk";

const [base, key, wav] = process.argv.slice(2);
const config = () => sdk.SpeechConfig.fromHost(new URL(base), key);
const details = (r) => (r.reason === sdk.ResultReason.Canceled ? sdk.CancellationDetails.fromResult(r).errorDetails : "");

function synthesize() {
  const s = new sdk.SpeechSynthesizer(config(), null);
  return new Promise((resolve, reject) => s.speakTextAsync("Hello", (r) => { s.close(); resolve(details(r)); }, (e) => { s.close(); reject(e); }));
}

function recognize() {
  const push = sdk.AudioInputStream.createPushStream();
  const b = readFileSync(wav);
  push.write(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  push.close();
  const r = new sdk.SpeechRecognizer(config(), sdk.AudioConfig.fromStreamInput(push));
  return new Promise((resolve, reject) => r.recognizeOnceAsync((res) => { r.close(); resolve(details(res)); }, (e) => { r.close(); reject(e); }));
}

const tts = await synthesize();
const stt = await recognize();
console.log(JSON.stringify({ tts, stt }));
