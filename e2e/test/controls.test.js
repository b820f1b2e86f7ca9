// Negative controls: the same clients fail, for the stated reason, without
// the proxy or with a token the fake did not issue. And the fake itself is
// strict: each wrong credential gets its 401.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { DUMMY_KEY, fixedAz, startFake, startProxy, stopAll } from "../lib/harness.js";
import { cancellation, curl, curlTTS, curlVoices, endpointConfig, hostConfig, openai, recognizeWav, sdk, ssml, synthesizeOnce } from "../lib/clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

let fake, foreignAz, foreignToken, proxy;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer"]);
  // An az that prints a well-formed, unexpired token no fake issued (another
  // tenant's, or a forged one).
  const foreign = await fake.token("foreign");
  foreignToken = foreign.token;
  foreignAz = await fixedAz(foreign.token, foreign.expiresOn);
  proxy = await startProxy(fake, { credential: "azure-cli", az: foreignAz });
});
after(() => stopAll(proxy, fake, foreignAz));

const lastReject = async () => (await fake.requests()).at(-1)?.reject;
const messages = [{ role: "user", content: "Say hello." }];

function assertCanceled401(result, label) {
  const why = cancellation(result);
  seen.add(label, why?.details);
  assert.equal(sdk.ResultReason[result.reason], "Canceled", label);
  assert.equal(why.code, "ConnectionFailure");
  assert.match(why.details, /Unexpected server response: 401/, why.details);
}

async function assertOpenAI401(endpoint, reason) {
  const err = await openai(endpoint).chat.completions.create({ model: "gpt-4o", messages }).then(
    () => assert.fail("the completion succeeded"),
    (e) => e,
  );
  seen.add("openai error", err.message);
  assert.equal(err.constructor.name, "AuthenticationError");
  assert.equal(err.status, 401);
  assert.match(err.message, new RegExp(`fakeazure: ${reason}`));
}

// Straight at the fake: the SDKs send the dummy key, which an Entra-only
// resource refuses.

test("no proxy: TTS fromHost(ws://fake) with the dummy key gets 401", async () => {
  await fake.reset();
  assertCanceled401(await synthesizeOnce(hostConfig(`ws://${fake.info.custom_host}`), "Straight at Azure."), "direct TTS");
  assert.equal(await lastReject(), "key_header");
});

test("no proxy: STT at the custom-domain path with the dummy key gets 401", async () => {
  await fake.reset();
  const url = `ws://${fake.info.custom_host}/stt/speech/recognition/interactive/cognitiveservices/v1`;
  assertCanceled401(await recognizeWav(endpointConfig(url)), "direct STT");
  assert.equal(await lastReject(), "key_header");
});

test("no proxy: AzureOpenAI with the dummy key gets 401 AuthenticationError", async () => {
  await fake.reset();
  await assertOpenAI401(fake.url, "key_header");
});

test("no proxy: curl REST TTS and the voices list get HTTP 401", async () => {
  await fake.reset();
  const tts = await curlTTS(`${fake.url}/tts`, "Straight at Azure.");
  assert.equal(tts.status, 401);
  assert.match(JSON.parse(tts.body).error.message, /fakeazure: key_header/);
  const voices = await curlVoices(`${fake.url}/tts`);
  assert.equal(voices.status, 401);
  const keyless = await curl([`${fake.url}/tts/cognitiveservices/voices/list`]);
  assert.equal(keyless.status, 401);
  assert.match(JSON.parse(keyless.body).error.message, /fakeazure: no_authorization/);
});

// Through a proxy whose credential yields a token the fake did not issue:
// the upstream's 401 comes back to each client.

test("foreign token: TTS through the proxy fails with the upstream's 401", async () => {
  await fake.reset();
  assertCanceled401(await synthesizeOnce(hostConfig(proxy.ws), "A foreign token."), "foreign TTS");
  const reqs = await fake.requests();
  // The fixed az hands back the same token, so a retry could not change the
  // answer and the proxy sends none; the SDK may still reconnect on its own.
  assert.ok(reqs.length >= 1, "at least the SDK's own attempt");
  assert.ok(reqs.every((r) => r.form === "bearer" && r.status === 401 && r.reject === "unknown_token"), JSON.stringify(reqs.map((r) => r.reject)));
});

test("foreign token: AzureOpenAI through the proxy gets 401 AuthenticationError", async () => {
  await fake.reset();
  await assertOpenAI401(proxy.http, "unknown_token");
});

test("foreign token: curl REST TTS through the proxy gets HTTP 401", async () => {
  await fake.reset();
  const res = await curlTTS(proxy.http, "A foreign token.");
  seen.add("curl foreign", res.body);
  assert.equal(res.status, 401);
  assert.match(JSON.parse(res.body).error.message, /fakeazure: unknown_token/);
  assert.deepEqual((await fake.stats()).rejections, { unknown_token: 1 },
    "one try: renewing gives the same token in the same form, so the proxy does not send it again");
});

// The fake's own checks, with tokens it mints on request.

test("the fake is strict: only one valid bearer token, and nothing else, gets through", async () => {
  await fake.reset();
  const valid = (await fake.token("valid")).token;
  const expired = (await fake.token("expired")).token;
  const tts = (...args) => curl(["-X", "POST", `${fake.url}/tts/cognitiveservices/v1`, "-H", "Content-Type: application/ssml+xml",
    "-H", "X-Microsoft-OutputFormat: riff-16khz-16bit-mono-pcm", "--data-binary", ssml("strict"), ...args]);
  const cases = [
    ["a valid bearer token", [`Authorization: Bearer ${valid}`], 200, undefined],
    ["an expired token", [`Authorization: Bearer ${expired}`], 401, "expired_token"],
    ["a foreign token", [`Authorization: Bearer ${foreignToken}`], 401, "unknown_token"],
    ["the aad form at a bearer-only resource", [`Authorization: Bearer aad#${fake.info.resource_id}#${valid}`], 401, "wrong_form"],
    ["a leaked key beside the token", [`Authorization: Bearer ${valid}`, `Ocp-Apim-Subscription-Key: ${DUMMY_KEY}`], 401, "key_header"],
    ["a leaked api-key beside the token", [`Authorization: Bearer ${valid}`, `api-key: ${DUMMY_KEY}`], 401, "key_header"],
    ["a second Authorization", [`Authorization: Bearer ${valid}`, `authorization: Bearer ${valid}`], 401, "second_authorization"],
    ["no Authorization", [], 401, "no_authorization"],
  ];
  for (const [name, headers, status, reason] of cases) {
    const res = await tts(...headers.flatMap((h) => ["-H", h]));
    assert.equal(res.status, status, `${name}: ${res.body.toString().slice(0, 200)}`);
    assert.equal(await lastReject(), reason, name);
  }
  const inQuery = await curl(["-X", "POST", `${fake.url}/tts/cognitiveservices/v1?Ocp-Apim-Subscription-Key=${DUMMY_KEY}`,
    "-H", `Authorization: Bearer ${valid}`, "-H", "Content-Type: application/ssml+xml", "-H", "X-Microsoft-OutputFormat: riff-16khz-16bit-mono-pcm", "--data-binary", ssml("q")]);
  assert.equal(inQuery.status, 401);
  assert.equal(await lastReject(), "credential_in_query");
});

test("secrets: the foreign token, JWTs and the dummy key never reach the proxy's logs or the clients", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: [foreignToken] });
});
