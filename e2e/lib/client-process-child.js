// The child of client-process.js: the clients of lib/clients.js, driven by
// commands on stdin. A synthesizer opened by "speech-open" stays open across
// "speak" commands, as an app keeps one.

import readline from "node:readline";
import tls from "node:tls";
import { OpenAI } from "openai";
import { OpenAIRealtimeWS } from "openai/realtime/ws";
import { cancellation, hostConfig, openai, sdk, speak, synthesizer } from "./clients.js";
import { DUMMY_KEY } from "./harness.js";

let synth;

const ops = {
  async "openai-chat"({ endpoint }) {
    const completion = await openai(endpoint).chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Say hello." }] });
    return completion.choices[0].message.content;
  },
  /**
   * One text conversation with the openai package's Node realtime client
   * (OpenAIRealtimeWS: wss:// from an https:// baseURL, Authorization
   * header), returning the response's text assembled from its deltas.
   */
  async "openai-realtime"({ endpoint }) {
    const rt = new OpenAIRealtimeWS({ model: "gpt-realtime" }, new OpenAI({ apiKey: DUMMY_KEY, baseURL: `${endpoint}/openai/v1` }));
    return new Promise((resolve, reject) => {
      let text = "";
      rt.on("error", (err) => reject(err.error ?? err));
      rt.socket.on("close", (code) => reject(new Error(`socket closed before the response: ${code}`)));
      rt.on("event", (ev) => {
        if (ev.type === "session.created") {
          rt.send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text: "Say hello." }] } });
          rt.send({ type: "response.create" });
        } else if (ev.type === "response.output_text.delta") {
          text += ev.delta;
        } else if (ev.type === "response.done") {
          resolve(text);
          rt.close();
        }
      });
    });
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
