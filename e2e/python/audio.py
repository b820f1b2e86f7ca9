"""WAV files for the recognizers, and checks on synthesized ones."""

import math
import struct
import wave

RATE = 16000
#: What the fake synthesizes per character of text: 50 ms of 16 kHz 16-bit
#: mono PCM (fakeazure.BytesPerCharacter).
BYTES_PER_CHARACTER = 1600


def tone_wav(path, parts):
    """Writes a 16 kHz 16-bit mono WAV: parts is a list of (kind, seconds),
    kind "tone" (440 Hz, loud enough for the fake to hear) or "silence".
    Returns the start of each tone in 100-ns ticks."""
    frames, starts, n = [], [], 0
    for kind, seconds in parts:
        count = int(seconds * RATE)
        if kind == "tone":
            starts.append(n * 10_000_000 // RATE)
            frames.append(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / RATE))) for i in range(count)))
        else:
            frames.append(b"\0\0" * count)
        n += count
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(frames))
    return starts


def read_wav(path):
    """(channels, sample width, rate, PCM bytes, file size) of a WAV file,
    read with the standard library's parser (it refuses a malformed one)."""
    with wave.open(str(path), "rb") as w:
        pcm = w.readframes(w.getnframes())
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), pcm


def expected_pcm_bytes(text):
    return BYTES_PER_CHARACTER * len(" ".join(text.split()))
