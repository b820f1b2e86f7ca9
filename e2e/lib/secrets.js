// The secrets check every test file ends with: nothing the proxy logged and
// nothing a client received may hold a token the fake issued, any JWT-shaped
// string, or the dummy key the client sent.

import assert from "node:assert/strict";
import { DUMMY_KEY } from "./harness.js";

// A JWT: base64url header starting {" (eyJ), claims, signature.
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}/;

/** Collects what clients received, labelled, for assertNoSecrets. */
export class Seen {
  constructor() { this.items = []; }
  add(label, data) {
    if (data === undefined || data === null) return data;
    let text;
    if (typeof data === "string") text = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = Buffer.from(data.buffer ?? data, data.byteOffset ?? 0, data.byteLength).toString("latin1");
    else text = JSON.stringify(data);
    this.items.push({ label, text });
    return data;
  }
}

/**
 * Asserts that no proxy log line and no collected body holds a token in
 * tokens, a JWT, or the dummy key. It also asserts that tokens is not empty
 * when expectTokens, so the check cannot pass by knowing nothing.
 */
export function assertNoSecrets({ logs, seen, tokens, expectTokens = true }) {
  if (expectTokens) assert.ok(tokens.length > 0, "the test knows no issued token to look for");
  const places = [
    ...logs.map((text, i) => ({ label: `proxy log line ${i + 1}`, text })),
    ...(seen?.items ?? []),
  ];
  assert.ok(places.length > 0, "nothing to check");
  for (const { label, text } of places) {
    for (const tok of tokens) {
      assert.ok(!text.includes(tok), `${label} holds an issued token`);
      // The signature alone would be as bad (it makes the token unique).
      const sig = tok.split(".")[2] ?? "";
      if (sig.length >= 16) assert.ok(!text.includes(sig), `${label} holds an issued token's signature`);
    }
    const m = text.match(JWT);
    assert.equal(m, null, `${label} holds a JWT-shaped string: ${m?.[0].slice(0, 12)}…`);
    assert.ok(!text.includes(DUMMY_KEY), `${label} holds the client's dummy key`);
  }
  return places.length;
}
