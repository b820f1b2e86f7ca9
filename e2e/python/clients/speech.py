"""A Speech SDK app, as a user writes one, pointed at entraproxy.

    python speech.py FORM BASE OP [ARGS...]

FORM is how SpeechConfig is made: "host" (host=BASE), "host-key" (host=BASE,
subscription=a dummy key) or "endpoint" (endpoint=BASE). OP is what the app
does; the result is printed as one JSON line. Runs under either SDK version's
virtual environment."""

import json
import os
import sys
import threading

import azure.cognitiveservices.speech as speechsdk

DUMMY_KEY = "dummy-key-ENTRAPROXY-E2E"
FORM, BASE, OP, ARGS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
# A bound no working setup reaches: a session that never ends fails the test
# instead of hanging it.
EVENT_TIMEOUT = 60


def config(cls=speechsdk.SpeechConfig):
    if FORM == "host":
        c = cls(host=BASE)
    elif FORM == "host-key":
        c = cls(host=BASE, subscription=DUMMY_KEY)
    elif FORM == "endpoint":
        c = cls(endpoint=BASE)
    else:
        raise SystemExit(f"unknown form {FORM!r}")
    # The SDK gives up on a synthesis whose first audio comes later than a
    # few seconds ("USP error: timeout waiting for the first audio chunk"),
    # and reconnects. On a loaded 2-core machine the fake and the proxy can
    # be that slow; a test must not depend on the machine's speed.
    for name in ("SpeechSynthesis_FirstChunkTimeoutMs", "SpeechSynthesis_AllChunkTimeoutMs"):
        c.set_property_by_name(name, str(EVENT_TIMEOUT * 1000))
    if os.environ.get("SPEECH_SDK_LOG"):  # the SDK's own trace, for debugging a test
        c.set_property(speechsdk.PropertyId.Speech_LogFilename, os.environ["SPEECH_SDK_LOG"])
    return c


def error_of(result):
    if result.reason == speechsdk.ResultReason.Canceled:
        return result.cancellation_details.error_details
    return ""


def synthesize(texts, wav=None):
    """One synthesizer, one text after the other (one connection)."""
    audio = speechsdk.audio.AudioOutputConfig(filename=wav) if wav else None
    synth = speechsdk.SpeechSynthesizer(speech_config=config(), audio_config=audio)
    out = []
    for t in texts:
        r = synth.speak_text_async(t).get()
        out.append({"reason": r.reason.name, "audio_bytes": len(r.audio_data), "error": error_of(r)})
    return out


def continuous(rec, start, stop, recognized_signal, item):
    out = {"results": [], "error": ""}
    done = threading.Event()
    recognized_signal.connect(lambda e: out["results"].append(item(e.result)))

    def canceled(e):
        if e.cancellation_details.reason == speechsdk.CancellationReason.Error:
            out["error"] = e.cancellation_details.error_details
        done.set()

    rec.canceled.connect(canceled)
    rec.session_stopped.connect(lambda e: done.set())
    start()
    if not done.wait(EVENT_TIMEOUT):
        out["error"] = "no session_stopped within %d s" % EVENT_TIMEOUT
    stop()
    return out


def main():
    res = {"version": speechsdk.__version__}
    if OP == "synthesize":  # ARGS: wav path, texts...
        res["turns"] = synthesize(ARGS[1:], ARGS[0])
    elif OP == "synthesize-repeat":  # ARGS: count, text
        res["turns"] = synthesize([ARGS[1]] * int(ARGS[0]))
    elif OP == "synthesize-format":  # ARGS: SpeechSynthesisOutputFormat member, text
        c = config()
        c.set_speech_synthesis_output_format(getattr(speechsdk.SpeechSynthesisOutputFormat, ARGS[0]))
        # The synthesizer must outlive the call: a temporary one is disposed
        # by Python while its synthesis runs, and the SDK then hangs or
        # cancels at random.
        synth = speechsdk.SpeechSynthesizer(speech_config=c, audio_config=None)
        r = synth.speak_text_async(ARGS[1]).get()
        res.update(reason=r.reason.name, audio_bytes=len(r.audio_data), head=r.audio_data[:4].hex(), error=error_of(r))
    elif OP == "synthesize-twice":  # two synthesizers, so two connections, in one process
        res["turns"] = synthesize([ARGS[0]]) + synthesize([ARGS[0]])
    elif OP == "recognize":  # ARGS: wav
        c = config()
        c.speech_recognition_language = "en-US"
        r = speechsdk.SpeechRecognizer(c, audio_config=speechsdk.audio.AudioConfig(filename=ARGS[0])).recognize_once()
        res.update(reason=r.reason.name, text=r.text, offset=r.offset, duration=r.duration, error=error_of(r))
    elif OP == "continuous":  # ARGS: wav
        c = config()
        c.speech_recognition_language = "en-US"
        rec = speechsdk.SpeechRecognizer(c, audio_config=speechsdk.audio.AudioConfig(filename=ARGS[0]))
        res.update(continuous(rec, rec.start_continuous_recognition, rec.stop_continuous_recognition, rec.recognized,
                              lambda r: {"reason": r.reason.name, "text": r.text, "offset": r.offset, "duration": r.duration}))
    elif OP == "translate":  # ARGS: wav, target languages...
        c = config(speechsdk.translation.SpeechTranslationConfig)
        c.speech_recognition_language = "en-US"
        for lang in ARGS[1:]:
            c.add_target_language(lang)
        r = speechsdk.translation.TranslationRecognizer(c, audio_config=speechsdk.audio.AudioConfig(filename=ARGS[0])).recognize_once()
        res.update(reason=r.reason.name, text=r.text, translations=dict(r.translations), error=error_of(r))
    elif OP == "transcribe":  # ARGS: wav
        c = config()
        c.speech_recognition_language = "en-US"
        t = speechsdk.transcription.ConversationTranscriber(c, audio_config=speechsdk.audio.AudioConfig(filename=ARGS[0]))
        res.update(continuous(t, lambda: t.start_transcribing_async().get(), lambda: t.stop_transcribing_async().get(), t.transcribed,
                              lambda r: {"reason": r.reason.name, "text": r.text, "speaker_id": r.speaker_id}))
    elif OP == "voices":
        synth = speechsdk.SpeechSynthesizer(speech_config=config(), audio_config=None)  # held, as above
        r = synth.get_voices_async("").get()
        res.update(reason=r.reason.name, voices=[v.short_name for v in r.voices], error=r.error_details)
    elif OP == "errors":  # what an app reads when things fail: one TTS and one STT; ARGS: wav
        tts = synthesize(["Hello"])[0]
        c = config()
        c.speech_recognition_language = "en-US"
        r = speechsdk.SpeechRecognizer(c, audio_config=speechsdk.audio.AudioConfig(filename=ARGS[0])).recognize_once()
        res.update(tts=tts["error"], stt=error_of(r))
    else:
        raise SystemExit(f"unknown op {OP!r}")
    print(json.dumps(res))


main()
