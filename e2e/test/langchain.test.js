// LangChain for JavaScript (@langchain/openai 1.5.8, the newest that
// supports Node 20): AzureChatOpenAI with azureOpenAIEndpoint pointing at the
// proxy and a dummy key.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startFake, startProxy, stopAll } from "../lib/harness.js";
import { langchainAzure } from "../lib/azure-clients.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

// fakeazure.OpenAIReply
const REPLY = "Hello from the fake Azure OpenAI deployment.";
let fake, proxy;
const seen = new Seen();

before(async () => {
  fake = await startFake(["-auth", "bearer"]);
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake));

test("AzureChatOpenAI({azureOpenAIEndpoint: http://proxy}).invoke: the deployment's reply", async () => {
  await fake.reset();
  const message = await langchainAzure(proxy.http).invoke("Say hello.");
  seen.add("message", message.content);
  assert.equal(message.content, REPLY);
  const [up, ...more] = await fake.requests();
  assert.equal(more.length, 0);
  assert.deepEqual([up.path, up.query, up.status, up.form], ["/openai/deployments/gpt-4o/chat/completions", "api-version=2024-10-21", 200, "bearer"]);
  assert.equal(up.header["Api-Key"], undefined, "the dummy api-key was stripped");
  assert.match(up.header["User-Agent"][0], /^langchainjs-azure-openai\//);
});

test("AzureChatOpenAI streamed through the proxy: the reply in chunks", async () => {
  await fake.reset();
  let text = "";
  let chunks = 0;
  for await (const chunk of await langchainAzure(proxy.http).stream("Say hello.")) {
    seen.add("chunk", chunk.content);
    text += chunk.content;
    chunks++;
  }
  assert.equal(text, REPLY);
  assert.ok(chunks >= 5, `${chunks} chunks`);
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the responses", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
