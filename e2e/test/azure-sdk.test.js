// The Azure SDK for JavaScript clients, unchanged but for their endpoint,
// through the proxy: Translator (@azure-rest/ai-translation-text 2.0.0) and
// Language (@azure/ai-language-text 1.1.0), with a dummy key. Each needs
// allowInsecureConnection: true for a plain http:// proxy; Translator also
// needs the /translator/text/v3.0 prefix in its endpoint, which it adds by
// itself only for hosts whose name contains "cognitiveservices".

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { DUMMY_KEY, startFake, startProxy, stopAll } from "../lib/harness.js";
import { curlTranslate } from "../lib/clients.js";
import { textAnalysis, translator } from "../lib/azure-clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

let fake, proxy;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer"]);
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake));

/** The fake's one recorded request, checked for what every recipe must show. */
async function onlyRequest(wantPath) {
  const reqs = await fake.requests();
  assert.equal(reqs.length, 1, JSON.stringify(reqs.map((r) => `${r.path} ${r.status}`)));
  const [up] = reqs;
  assert.equal(up.path, wantPath);
  assert.equal(up.form, "bearer");
  assert.ok(up.tokenSeq > 0, "a token the fake issued");
  assert.equal(up.header["Ocp-Apim-Subscription-Key"], undefined, "the dummy key was stripped");
  return up;
}

test("Translator: TextTranslationClient(http://proxy/translator/text/v3.0, allowInsecureConnection) translates", async () => {
  await fake.reset();
  const res = await translator(`${proxy.http}/translator/text/v3.0`).path("/translate").post({
    body: { inputs: [{ text: "Hello through the proxy", targets: [{ language: "de" }] }] },
  });
  seen.add("translation", res.body);
  assert.equal(res.status, "200", JSON.stringify(res.body));
  assert.equal(res.body.value[0].translations[0].text, "[de] Hello through the proxy");
  const up = await onlyRequest("/translator/text/v3.0/translate");
  assert.equal(up.status, 200);
  assert.equal(up.query, "api-version=2026-06-06");
  assert.match(up.header["User-Agent"][0], /^azsdk-js-ai-translation-text-rest\/2\.0\.0 /);
});

test("documented: Translator at http://proxy (no /translator/text/v3.0) posts to /translate, which the resource does not serve", async () => {
  await fake.reset();
  const res = await translator(proxy.http).path("/translate").post({
    body: { inputs: [{ text: "Hello", targets: [{ language: "de" }] }] },
  });
  seen.add("404", res.body);
  assert.equal(res.status, "404");
  const reqs = await fake.requests();
  assert.deepEqual(reqs.map((r) => `${r.path} ${r.status}`), ["/translate 404"]);
});

test("documented: without allowInsecureConnection the @azure clients refuse http:// before sending anything", async () => {
  await fake.reset();
  await assert.rejects(
    async () => translator(`${proxy.http}/translator/text/v3.0`, { allowInsecureConnection: false }).path("/translate").post({
      body: { inputs: [{ text: "Hello", targets: [{ language: "de" }] }] },
    }),
    /Cannot connect to http:\/\/127\.0\.0\.1:\d+\/translator\/text\/v3\.0\/translate\?api-version=2026-06-06 while allowInsecureConnection is false/,
  );
  await assert.rejects(
    async () => textAnalysis(proxy.http, { allowInsecureConnection: false }).analyze("LanguageDetection", ["Hello"]),
    /while allowInsecureConnection is false/,
  );
  assert.deepEqual(await fake.requests(), []);
});

test("Language: TextAnalysisClient(http://proxy, allowInsecureConnection) detects the language", async () => {
  await fake.reset();
  const [doc] = await textAnalysis(proxy.http).analyze("LanguageDetection", ["Hello world, through the proxy."]);
  seen.add("detection", doc);
  assert.equal(doc.error, undefined, JSON.stringify(doc));
  assert.equal(doc.primaryLanguage.iso6391Name, "en");
  const up = await onlyRequest("/language/:analyze-text");
  assert.equal(up.status, 200);
  assert.equal(up.query, "api-version=2023-04-01");
});

test("curl: the Translator v3.0 call from the Translator docs, at http://proxy/translator/text/v3.0/translate", async () => {
  await fake.reset();
  const res = await curlTranslate(proxy.http, "Hello from curl", "fr");
  seen.add("curl translation", res.body);
  assert.equal(res.status, 200, res.body.toString());
  assert.deepEqual(JSON.parse(res.body), [{ translations: [{ text: "[fr] Hello from curl", to: "fr" }] }]);
  const up = await onlyRequest("/translator/text/v3.0/translate");
  assert.equal(up.query, "api-version=3.0&to=fr");
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the responses", async () => {
  assert.ok(DUMMY_KEY);
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
