// WAV helpers: the fake synthesizes 16 kHz, 16-bit, mono PCM; the suite
// feeds recognition the same format.

/** PCM bytes the fake makes for text: 1600 per code point of the collapsed text (fakeazure.AudioBytes). */
export function audioBytes(text) {
  return 1600 * [...text.trim().split(/\s+/).join(" ")].length;
}

/** The 44-byte RIFF header the Speech SDK puts before the PCM of riff-* results. */
export const WAV_HEADER_BYTES = 44;

/** A 16 kHz 16-bit mono PCM WAV file of a sine tone, header included. */
export function toneWav(seconds = 1.5, hz = 440) {
  const rate = 16000;
  const samples = Math.round(seconds * rate);
  const buf = Buffer.alloc(44 + samples * 2);
  buf.write("RIFF", 0, "ascii");
  buf.writeUInt32LE(36 + samples * 2, 4);
  buf.write("WAVE", 8, "ascii");
  buf.write("fmt ", 12, "ascii");
  buf.writeUInt32LE(16, 16); // fmt chunk size
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28); // byte rate
  buf.writeUInt16LE(2, 32); // block align
  buf.writeUInt16LE(16, 34); // bits per sample
  buf.write("data", 36, "ascii");
  buf.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) {
    buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  }
  return buf;
}

/**
 * Parses a canonical PCM WAV (RIFF, fmt, data) and returns its format and
 * data size; throws when it is not one a player would accept.
 */
export function parseWav(buf) {
  const b = Buffer.from(buf);
  const fail = (why) => { throw new Error(`not a playable WAV: ${why} (${b.length} bytes, starts ${JSON.stringify(b.subarray(0, 16).toString("latin1"))})`); };
  if (b.length < 44) fail("shorter than a header");
  if (b.toString("ascii", 0, 4) !== "RIFF") fail("no RIFF");
  if (b.toString("ascii", 8, 12) !== "WAVE") fail("no WAVE");
  if (b.readUInt32LE(4) !== b.length - 8) fail(`RIFF size ${b.readUInt32LE(4)} != file size - 8`);
  let off = 12;
  let fmt;
  while (off + 8 <= b.length) {
    const id = b.toString("ascii", off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === "fmt ") {
      fmt = {
        audioFormat: b.readUInt16LE(off + 8),
        channels: b.readUInt16LE(off + 10),
        sampleRate: b.readUInt32LE(off + 12),
        byteRate: b.readUInt32LE(off + 16),
        blockAlign: b.readUInt16LE(off + 20),
        bitsPerSample: b.readUInt16LE(off + 22),
      };
    } else if (id === "data") {
      if (!fmt) fail("data before fmt");
      if (off + 8 + size !== b.length) fail(`data size ${size} != bytes after the header ${b.length - off - 8}`);
      return { ...fmt, dataBytes: size, dataOffset: off + 8 };
    }
    off += 8 + size + (size & 1);
  }
  return fail("no data chunk");
}
