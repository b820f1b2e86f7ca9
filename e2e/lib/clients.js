// The clients under test, used exactly as an application would use them: the
// only thing that changes between "through the proxy" and "straight at the
// fake" is the address.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import sdkModule from "microsoft-cognitiveservices-speech-sdk";
import { AzureOpenAI } from "openai";
import { DUMMY_KEY } from "./harness.js";
import { toneWav } from "./audio.js";

export const sdk = sdkModule;
const execFileP = promisify(execFile);

/** The SSML speakTextAsync sends for text; REST TTS gets the same. */
export function ssml(text) {
  const esc = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return `<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='en-US'><voice name='en-US-AvaMultilingualNeural'>${esc}</voice></speak>`;
}

/** SpeechConfig.fromHost(ws://HOST, key): the one change users make. */
export function hostConfig(wsBase, key = DUMMY_KEY) {
  return sdk.SpeechConfig.fromHost(new URL(wsBase), key);
}

/** SpeechConfig.fromEndpoint(URL, key) with an explicit path. */
export function endpointConfig(url, key = DUMMY_KEY) {
  return sdk.SpeechConfig.fromEndpoint(new URL(url), key);
}

/** A synthesizer with no speaker output: results carry the audio. */
export function synthesizer(config) {
  return new sdk.SpeechSynthesizer(config, null);
}

export function speak(synth, text) {
  return new Promise((resolve, reject) => synth.speakTextAsync(text, resolve, reject));
}

/** One synthesis on a fresh synthesizer, closed afterwards. */
export async function synthesizeOnce(config, text) {
  const synth = synthesizer(config);
  try {
    return await speak(synth, text);
  } finally {
    synth.close();
  }
}

/**
 * recognizeOnceAsync from a push stream fed with a WAV file, header and
 * data, in 3200-byte chunks as a file reader would, then closed.
 */
export async function recognizeWav(config, wav = toneWav(1.5)) {
  config.speechRecognitionLanguage = "en-US";
  const push = sdk.AudioInputStream.createPushStream(sdk.AudioStreamFormat.getWaveFormatPCM(16000, 16, 1));
  for (let off = 0; off < wav.length; off += 3200) {
    const chunk = wav.subarray(off, off + 3200);
    push.write(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length));
  }
  push.close();
  const rec = new sdk.SpeechRecognizer(config, sdk.AudioConfig.fromStreamInput(push));
  try {
    return await new Promise((resolve, reject) => rec.recognizeOnceAsync(resolve, reject));
  } finally {
    rec.close();
  }
}

/** Why a Speech result was cancelled, as a user would print it. */
export function cancellation(result) {
  if (result.reason !== sdk.ResultReason.Canceled) return null;
  const d = sdk.CancellationDetails.fromResult(result);
  return { reason: sdk.CancellationReason[d.reason], code: sdk.CancellationErrorCode[d.ErrorCode], details: d.errorDetails };
}

/**
 * AzureOpenAI as a user configures it, with a dummy key. options override
 * the client's (the tests default to no retries and a 120 s timeout, a hang
 * guard: the waits end on the answers).
 */
export function openai(endpoint, key = DUMMY_KEY, options = {}) {
  return new AzureOpenAI({ endpoint, apiKey: key, apiVersion: "2024-10-21", deployment: "gpt-4o", maxRetries: 0, timeout: 120_000, ...options });
}

/**
 * Runs curl and returns {status, headers, body}. --noproxy so that a proxy
 * in the environment never sits between curl and 127.0.0.1.
 */
export async function curl(args) {
  const marker = "\n<<curl>>";
  const { stdout } = await execFileP(
    "curl",
    ["--silent", "--show-error", "--noproxy", "*", "--max-time", "20", ...args, "--output", "-", "--write-out", `${marker}%{http_code} %{content_type}`],
    { encoding: "buffer", maxBuffer: 64 << 20 },
  ).catch((err) => { throw new Error(`curl ${args.join(" ")}: ${err.stderr?.toString() || err.message}`); });
  const at = stdout.lastIndexOf(marker);
  const [status, contentType = ""] = stdout.subarray(at + marker.length).toString().split(" ");
  return { status: Number(status), contentType, body: stdout.subarray(0, at) };
}

/** curl for REST TTS, the way the Azure docs show it, with a dummy key. */
export function curlTTS(base, text, key = DUMMY_KEY) {
  return curl([
    "-X", "POST", `${base}/cognitiveservices/v1`,
    "-H", `Ocp-Apim-Subscription-Key: ${key}`,
    "-H", "Content-Type: application/ssml+xml",
    "-H", "X-Microsoft-OutputFormat: riff-16khz-16bit-mono-pcm",
    "-H", "User-Agent: entraproxy-e2e-curl",
    "--data-binary", ssml(text),
  ]);
}

export function curlVoices(base, key = DUMMY_KEY) {
  return curl([`${base}/cognitiveservices/voices/list`, "-H", `Ocp-Apim-Subscription-Key: ${key}`]);
}

/**
 * TranslationRecognizer.recognizeOnceAsync from a push stream fed with a
 * WAV, into the target language to; config is a SpeechTranslationConfig.
 */
export async function translateWav(config, to, wav = toneWav(1.5)) {
  config.speechRecognitionLanguage = "en-US";
  config.addTargetLanguage(to);
  const push = sdk.AudioInputStream.createPushStream(sdk.AudioStreamFormat.getWaveFormatPCM(16000, 16, 1));
  push.write(wav.buffer.slice(wav.byteOffset, wav.byteOffset + wav.length));
  push.close();
  const rec = new sdk.TranslationRecognizer(config, sdk.AudioConfig.fromStreamInput(push));
  try {
    return await new Promise((resolve, reject) => rec.recognizeOnceAsync(resolve, reject));
  } finally {
    rec.close();
  }
}

/** curl for the Translator v3.0 call as the Translator docs show it. */
export function curlTranslate(base, text, to, key = DUMMY_KEY) {
  return curl([
    "-X", "POST", `${base}/translator/text/v3.0/translate?api-version=3.0&to=${to}`,
    "-H", `Ocp-Apim-Subscription-Key: ${key}`,
    "-H", "Content-Type: application/json",
    "--data-binary", JSON.stringify([{ Text: text }]),
  ]);
}
