// Runs clients in a separate node process, for settings a process reads only
// at start: NODE_EXTRA_CA_CERTS, which is how a Node app trusts a private CA
// (the Speech SDK and fetch have no per-client CA option). The parent sends
// one JSON command per line on stdin; the child answers one JSON line each,
// {ok: true, result} or {ok: false, error}.

import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "client-process-child.js");

export function startClientProcess(env) {
  const proc = spawn(process.execPath, [child], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "inherit"] });
  const pending = [];
  readline.createInterface({ input: proc.stdout }).on("line", (line) => {
    if (!line.startsWith('{"ok":')) return; // something a library printed
    const p = pending.shift();
    if (p) p.resolve(JSON.parse(line));
  });
  const exited = once(proc, "exit");
  exited.then(([code]) => {
    for (const p of pending.splice(0)) p.reject(new Error(`client process exited (code ${code})`));
  });
  return {
    /** Runs op with args in the child; resolves {ok, result | error}. */
    call(op, args = {}) {
      return new Promise((resolve, reject) => {
        pending.push({ resolve, reject });
        proc.stdin.write(JSON.stringify({ op, ...args }) + "\n");
      });
    },
    async stop() {
      proc.stdin.end();
      await exited;
    },
  };
}
