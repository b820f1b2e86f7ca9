// Which SpeechConfig forms of the JavaScript Speech SDK 1.52 reach a plain
// ws:// proxy, for recognition (STT) and speech translation (TTS is in
// speech.test.js). fromEndpoint with a root path first fetches
// https://HOST:443/stt/speech/universal/v2?...&GenerateRedirectResponse=true
// (ConnectionFactoryBase.getRedirectUrlFromEndpoint; SpeechConnectionFactory
// and TranslationConnectionFactory call it when the path is empty or "/"):
// port 443 and TLS whatever the URL said, so it never reaches the proxy.
// fromHost, or fromEndpoint with an explicit path, connects directly.

import { after, before, test } from "node:test";
import net from "node:net";
import { inspect } from "node:util";
import assert from "node:assert/strict";
import { DUMMY_KEY, startFake, startProxy, stopAll } from "../lib/harness.js";
import { cancellation, recognizeWav, sdk, translateWav } from "../lib/clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

const PHRASE = "Which endpoint forms work.";
let fake, proxy;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer", "-phrase", PHRASE]);
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake));

const speech = {
  fromHost: (p) => sdk.SpeechConfig.fromHost(new URL(p), DUMMY_KEY),
  fromEndpoint: (p) => sdk.SpeechConfig.fromEndpoint(new URL(p), DUMMY_KEY),
};
const translation = {
  fromHost: (p) => sdk.SpeechTranslationConfig.fromHost(new URL(p), DUMMY_KEY),
  fromEndpoint: (p) => sdk.SpeechTranslationConfig.fromEndpoint(new URL(p), DUMMY_KEY),
};

// Each working form: the config, and the path the fake must see after the
// proxy's Speech path mapping.
const working = [
  { name: "STT fromHost(ws://proxy)", run: () => recognizeWav(speech.fromHost(proxy.ws)), path: "/stt/speech/recognition/interactive/cognitiveservices/v1" },
  { name: "STT fromEndpoint(ws://proxy/stt/speech/universal/v2)", run: () => recognizeWav(speech.fromEndpoint(`${proxy.ws}/stt/speech/universal/v2`)), path: "/stt/speech/universal/v2" },
  { name: "STT fromEndpoint(ws://proxy/speech/recognition/conversation/cognitiveservices/v1)", run: () => recognizeWav(speech.fromEndpoint(`${proxy.ws}/speech/recognition/conversation/cognitiveservices/v1`)), path: "/stt/speech/recognition/conversation/cognitiveservices/v1" },
  { name: "translation fromHost(ws://proxy)", run: () => translateWav(translation.fromHost(proxy.ws), "de"), path: "/stt/speech/universal/v2", to: "de" },
  { name: "translation fromEndpoint(ws://proxy/stt/speech/universal/v2)", run: () => translateWav(translation.fromEndpoint(`${proxy.ws}/stt/speech/universal/v2`), "fr"), path: "/stt/speech/universal/v2", to: "fr" },
];

for (const w of working) {
  test(`${w.name}: recognized${w.to ? " and translated" : ""} through the proxy`, async () => {
    await fake.reset();
    const result = await w.run();
    seen.add(w.name, result.json);
    if (w.to) {
      assert.equal(sdk.ResultReason[result.reason], "TranslatedSpeech", JSON.stringify(cancellation(result)));
      assert.equal(result.text, PHRASE);
      assert.equal(result.translations.get(w.to), `[${w.to}] ${PHRASE}`);
    } else {
      assert.equal(sdk.ResultReason[result.reason], "RecognizedSpeech", JSON.stringify(cancellation(result)));
      assert.equal(result.text, PHRASE);
    }
    const [up, ...more] = await fake.requests();
    assert.equal(more.length, 0);
    assert.deepEqual([up.path, up.status, up.form], [w.path, 101, "bearer"]);
    assert.doesNotMatch(up.query, /Ocp-Apim-Subscription-Key|Authorization/i);
    if (w.to) assert.match(up.query, new RegExp(`(^|&)to=${w.to}(&|$)`));
  });
}

const probing = [
  { name: "STT fromEndpoint(ws://proxy)", run: () => recognizeWav(speech.fromEndpoint(proxy.ws)) },
  { name: "translation fromEndpoint(ws://proxy)", run: () => translateWav(translation.fromEndpoint(proxy.ws), "de") },
];

for (const p of probing) {
  test(`documented: ${p.name} with a root path probes https://127.0.0.1:443 and never reaches the proxy`, async (t) => {
    const open443 = await new Promise((resolve) => {
      const c = net.connect(443, "127.0.0.1", () => { c.destroy(); resolve(true); }).on("error", () => resolve(false));
    });
    if (open443) return t.skip("something listens on 127.0.0.1:443 here; the probe would reach it");
    await fake.reset();
    await proxy.sessionsLogged(); // the earlier tests' sessions have their lines
    const before = proxy.logs().length;
    const result = await p.run();
    assert.equal(sdk.ResultReason[result.reason], "Canceled");
    assert.match(inspect(cancellation(result).details), /ECONNREFUSED 127\.0\.0\.1:443/);
    assert.equal(proxy.logs().slice(before).filter((l) => l.msg === "websocket" || l.msg === "request").length, 0, "the proxy saw nothing");
    assert.deepEqual(await fake.requests(), []);
  });
}

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the results", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
