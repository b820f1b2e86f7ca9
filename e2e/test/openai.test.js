// The openai package's AzureOpenAI client with a dummy key, through the proxy.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startFake, startProxy, stopAll } from "../lib/harness.js";
import { openai } from "../lib/clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

// fakeazure.OpenAIReply
const REPLY = "Hello from the fake Azure OpenAI deployment.";
let fake, proxy;
const seen = new Seen();

before(async () => {
  // Speech accepts both forms here; Azure OpenAI accepts only bearer whatever -auth says.
  fake = await startFake(["-sse-gap", "10ms"]);
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake));

const messages = [{ role: "user", content: "Say hello." }];

test("AzureOpenAI chat completion through the proxy", async () => {
  await fake.reset();
  const completion = await openai(proxy.http).chat.completions.create({ model: "gpt-4o", messages });
  seen.add("completion", completion);
  assert.equal(completion.object, "chat.completion");
  assert.equal(completion.choices[0].message.content, REPLY);
  assert.equal(completion.choices[0].finish_reason, "stop");

  const [up] = await fake.requests();
  assert.equal(up.path, "/openai/deployments/gpt-4o/chat/completions");
  assert.equal(up.query, "api-version=2024-10-21");
  assert.equal(up.status, 200);
  assert.equal(up.form, "bearer");
  assert.equal(up.header["Api-Key"], undefined, "the dummy api-key was stripped");
  assert.match(up.header["User-Agent"][0], /^AzureOpenAI\/JS|OpenAI\/JS/, "the client's User-Agent passes");
});

test("AzureOpenAI streamed completion: the first chunk arrives while the fake still writes the stream", async () => {
  await fake.reset();
  // An hour between events: the first chunk can reach the client only if
  // the proxy passes it on as it comes, and the fake cannot have written
  // the second when the client holds the first, however busy the machine.
  await fake.config({ sseGap: "1h" });
  const stream = await openai(proxy.http).chat.completions.create({ model: "gpt-4o", messages, stream: true });
  let atFirst;
  for await (const chunk of stream) {
    seen.add("chunk", chunk);
    atFirst = await fake.streams();
    break; // the client leaves; the fake's stream ends with its request
  }
  assert.equal(atFirst?.length, 1, "one stream at the fake");
  assert.equal(atFirst[0].done, false, "the fake was still writing when the client had chunk 1");
  // The fake notes an event after flushing it: the first may not be noted yet.
  assert.ok(atFirst[0].eventsUnixMs.length <= 1, "the fake had written one event");
});

test("AzureOpenAI streamed completion: every chunk, in order", async () => {
  await fake.reset();
  const stream = await openai(proxy.http).chat.completions.create({ model: "gpt-4o", messages, stream: true });
  let text = "";
  let chunks = 0;
  for await (const chunk of stream) {
    seen.add("chunk", chunk);
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(text, REPLY);
  assert.ok(chunks >= 10, `${chunks} chunks`);
  const [done] = await fake.streams();
  assert.equal(done.done, true);
});

// A reasoning model may think for minutes before a non-streaming answer.
// ENTRAPROXY_UPSTREAM_TIMEOUT bounds connecting only; the wait for the answer
// has ENTRAPROXY_RESPONSE_TIMEOUT (10 minutes, as the openai SDK's own
// timeout). Cut at the connect timeout, the SDK's two retries (its default)
// would make Azure run, and bill, the completion three times.
test("AzureOpenAI completion slower than ENTRAPROXY_UPSTREAM_TIMEOUT: answered once, not cut or retried", async () => {
  await fake.reset();
  await fake.config({ chatDelay: "3s" });
  const slowProxy = await startProxy(fake, { env: { ENTRAPROXY_UPSTREAM_TIMEOUT: "1s" } });
  try {
    const client = openai(slowProxy.http, undefined, { maxRetries: 2, timeout: 60_000 });
    const completion = await client.chat.completions.create({ model: "gpt-4o", messages });
    seen.add("slow completion", completion);
    assert.equal(completion.choices[0].message.content, REPLY);
    const chats = (await fake.requests()).filter((r) => r.path.endsWith("/chat/completions"));
    assert.equal(chats.length, 1, "the completion ran once at the fake");
    assertNoSecrets({ logs: slowProxy.rawLogs(), seen, tokens: await slowProxy.issuedTokens() });
  } finally {
    await fake.config({ chatDelay: "0s" });
    await slowProxy.stop();
  }
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the responses", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
