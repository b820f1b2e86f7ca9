// Batch transcription as Microsoft's batch samples drive it: submit, then
// follow the absolute URLs the answers carry (Location, self, links.files,
// @nextLink), sending the app's key with each call. Through the proxy those
// URLs must lead back to the proxy: followed to Azure itself, the dummy key
// gets a 401. The client is Node's fetch, as an app would use it.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { DUMMY_KEY, startFake, startProxy, stopAll } from "../lib/harness.js";
import { assertNoSecrets, Seen } from "../lib/secrets.js";

const API = "api-version=2024-11-15";
const STORAGE = "fakespeechstorage.blob.core.windows.net"; // fakeazure.BatchContentHost
let fake, proxy;
const seen = new Seen();

before(async () => {
  fake = await startFake();
  proxy = await startProxy(fake);
});
after(() => stopAll(proxy, fake));

/** A call as the batch sample makes it: the app's key on every request. */
async function call(url, init = {}) {
  const res = await fetch(url, { ...init, headers: { "Ocp-Apim-Subscription-Key": DUMMY_KEY, ...init.headers } });
  const body = await res.json();
  seen.add(`${init.method ?? "GET"} ${new URL(url).pathname}`, body);
  assert.ok(res.ok, `${url}: ${res.status} ${JSON.stringify(body)}`);
  return { res, body };
}

test("batch transcription: every URL an answer names leads back through the proxy", async () => {
  await fake.reset();
  const created = [];
  for (const name of ["first", "second", "third"]) {
    const { res, body } = await call(`${proxy.http}/speechtotext/transcriptions:submit?${API}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ displayName: name, locale: "en-US", contentUrls: [`https://example.blob.core.windows.net/audio/${name}.wav`] }),
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("location"), body.self);
    assert.ok(body.self.startsWith(`${proxy.http}/speechtotext/transcriptions/`), `self ${body.self} leads around the proxy`);
    created.push(body);
  }

  for (const t of created) {
    const { body } = await call(t.self);
    assert.equal(body.status, "Succeeded");
    const { body: files } = await call(t.links.files);
    assert.ok(files.values[0].self.startsWith(proxy.http), files.values[0].self);
    assert.equal(new URL(files.values[0].links.contentUrl).host, STORAGE, "storage URLs are not the upstream's: unchanged");
  }

  const listed = [];
  let pages = 0;
  for (let next = `${proxy.http}/speechtotext/transcriptions?${API}`; next; pages++) {
    const { body } = await call(next);
    listed.push(...body.values.map((v) => v.self));
    next = body["@nextLink"];
    if (next) assert.ok(next.startsWith(proxy.http), `@nextLink ${next} leads around the proxy`);
  }
  assert.ok(pages > 1, "the list came in pages");
  assert.deepEqual(listed, created.map((t) => t.self));

  const reqs = await fake.requests();
  assert.equal(reqs.length, 3 + 6 + pages, "every call reached the fake through the proxy");
  for (const r of reqs) assert.equal(r.reject ?? "", "", `${r.method} ${r.path} refused: ${r.reject}`);
});

test("secrets: no issued token, JWT or dummy key in the proxy's logs or the answers", async () => {
  assertNoSecrets({ logs: proxy.rawLogs(), seen, tokens: await proxy.issuedTokens() });
});
