// The child of client-process.js: the clients of lib/clients.js, driven by
// commands on stdin. A synthesizer opened by "speech-open" stays open across
// "speak" commands, as an app keeps one.

import readline from "node:readline";
import tls from "node:tls";
import { cancellation, hostConfig, openai, sdk, speak, synthesizer } from "./clients.js";

let synth;

const ops = {
  async "openai-chat"({ endpoint }) {
    const completion = await openai(endpoint).chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Say hello." }] });
    return completion.choices[0].message.content;
  },
  async "speech-open"({ ws }) {
    synth = synthesizer(hostConfig(ws));
    return true;
  },
  async speak({ text }) {
    const result = await speak(synth, text);
    return { reason: sdk.ResultReason[result.reason], bytes: result.audioData.byteLength, cancellation: cancellation(result) };
  },
  async "speech-close"() {
    synth?.close();
    synth = undefined;
    return true;
  },
  /** The serial number of the certificate a new TLS connection gets, trusting the default CAs. */
  async "peer-serial"({ host, port }) {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host, port, servername: host === "127.0.0.1" ? undefined : host }, () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.end();
        resolve(serial);
      });
      socket.on("error", reject);
    });
  },
};

/** An error with its chain of causes, as a user would print it. */
function describe(err) {
  const parts = [];
  for (let e = err; e; e = e.cause) parts.push(`${e.constructor?.name ?? "Error"}: ${e.code ? `${e.code} ` : ""}${e.message}`);
  return parts.join(" <- ");
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { op, ...args } = JSON.parse(line);
  let reply;
  try {
    reply = { ok: true, result: await ops[op](args) };
  } catch (err) {
    reply = { ok: false, error: describe(err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
synth?.close();
