"""The native Speech SDK (Python), the seed's version and the newest, through
bin/entraproxy to the fake Azure, which accepts only Entra ID bearer tokens it
issued. Each test asserts what the app got and what the upstream saw."""

import pytest

from audio import expected_pcm_bytes, read_wav, tone_wav
from harness import HERE, SDK_VERSIONS, assert_clean_upstream, run_client, service_requests

PHRASE = "Hello from the fake Azure."
VERSIONS = list(SDK_VERSIONS)
SEED_TEXT = "Hello, this is a test"
SEED_LINE = "speech_config = speechsdk.SpeechConfig(token_credential=credential, endpoint=endpoint)"

#: The one line a user of the seed program changes, per form the README recommends.
SEED_FORMS = {
    "host": 'speech_config = speechsdk.SpeechConfig(host="ws://{listen}")',
    "host-key": 'speech_config = speechsdk.SpeechConfig(host="ws://{listen}", subscription="dummy-key-ENTRAPROXY-E2E")',
    "endpoint": 'speech_config = speechsdk.SpeechConfig(endpoint="ws://{listen}")',
}


def seed_variant(tmp_path, line):
    """The seed program with its SpeechConfig line replaced by line."""
    src = (HERE / "clients" / "seed.py").read_text()
    assert src.count(SEED_LINE) == 1
    out = tmp_path / "seed_changed.py"
    out.write_text(src.replace(SEED_LINE, line))
    return out


def run_seed(python, program, env):
    import subprocess
    from harness import base_env
    e = base_env()
    e.update(env)
    res = subprocess.run([str(python), str(program)], env=e, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"seed program exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout.splitlines()


def handshakes(fake, path):
    return [r for r in service_requests(fake) if r["websocket"] and r["path"] == path]


@pytest.mark.parametrize("form", list(SEED_FORMS))
@pytest.mark.parametrize("version", VERSIONS)
def test_seed_program_one_line_changed(version, form, clean, proxy, tmp_path):
    program = seed_variant(tmp_path, SEED_FORMS[form].format(listen=proxy.listen))
    wav = tmp_path / "seed.wav"
    lines = run_seed(SDK_VERSIONS[version], program, {"SEED_ENDPOINT": "unused", "SEED_WAV": str(wav)})
    assert lines[0] == f"Speech synthesized for text {SEED_TEXT}", lines
    channels, width, rate, pcm = read_wav(wav)
    assert (channels, width, rate) == (1, 2, 16000)
    assert len(pcm) == expected_pcm_bytes(SEED_TEXT) == 33600
    reqs = service_requests(clean)
    assert [r["path"] for r in reqs] == ["/tts/cognitiveservices/websocket/v1"]
    assert reqs[0]["status"] == 101 and reqs[0]["subprotocol"] == "USP"
    assert reqs[0]["header"]["User-Agent"][0].startswith(f"SpeechSDK-Python/{version} ")
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("version", VERSIONS)
def test_synthesizer_reused_for_20_syntheses_on_one_connection(version, clean, proxy):
    text = "Twenty turns on one socket."
    res = run_client(SDK_VERSIONS[version], "speech.py", "host-key", proxy.ws, "synthesize-repeat", 20, text)
    assert res["version"] == version
    # The in-memory result is a RIFF file: a 46-byte header (the SDK writes
    # WAVEFORMATEX) and the PCM.
    assert [t["audio_bytes"] for t in res["turns"]] == [46 + expected_pcm_bytes(text)] * 20
    assert {t["reason"] for t in res["turns"]} == {"SynthesizingAudioCompleted"}
    assert len(handshakes(clean, "/tts/cognitiveservices/websocket/v1")) == 1


@pytest.mark.parametrize("form,path", [
    ("host", "/stt/speech/recognition/interactive/cognitiveservices/v1"),
    ("endpoint", "/stt/speech/universal/v2"),
])
@pytest.mark.parametrize("version", VERSIONS)
def test_recognize_once_from_wav(version, form, path, clean, proxy, tmp_path):
    wav = tmp_path / "hello.wav"
    tone_wav(wav, [("tone", 1.5)])
    base = proxy.ws
    res = run_client(SDK_VERSIONS[version], "speech.py", form, base, "recognize", wav)
    assert (res["reason"], res["text"]) == ("RecognizedSpeech", PHRASE), res
    assert res["duration"] == 15_000_000  # 1.5 s in 100-ns ticks
    reqs = service_requests(clean)
    assert [r["path"] for r in reqs] == [path]
    if form == "host":
        assert reqs[0]["query"] == "language=en-US"
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("version", VERSIONS)
def test_continuous_recognition_of_three_phrases(version, clean, proxy, tmp_path):
    wav = tmp_path / "three.wav"
    starts = tone_wav(wav, [("tone", 0.6), ("silence", 0.5), ("tone", 0.4), ("silence", 0.5), ("tone", 0.8), ("silence", 0.3)])
    res = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "continuous", wav)
    assert res["error"] == ""
    got = [(r["reason"], r["text"], r["offset"], r["duration"]) for r in res["results"]]
    assert got == [("RecognizedSpeech", PHRASE, starts[0], 6_000_000),
                   ("RecognizedSpeech", PHRASE, starts[1], 4_000_000),
                   ("RecognizedSpeech", PHRASE, starts[2], 8_000_000)]
    reqs = service_requests(clean)
    assert [(r["path"], r["query"]) for r in reqs] == [("/stt/speech/recognition/conversation/cognitiveservices/v1", "language=en-US")]
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("version", VERSIONS)
def test_translation_recognizer(version, clean, proxy, tmp_path):
    wav = tmp_path / "hello.wav"
    tone_wav(wav, [("tone", 1.0)])
    res = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "translate", wav, "de", "fr")
    assert res["reason"] == "TranslatedSpeech", res
    assert res["text"] == PHRASE
    assert res["translations"] == {"de": "[de] " + PHRASE, "fr": "[fr] " + PHRASE}
    reqs = service_requests(clean)
    # Host mode keeps /stt for translation: the proxy maps nothing.
    assert [r["path"] for r in reqs] == ["/stt/speech/universal/v2"]
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("version", VERSIONS)
def test_conversation_transcriber(version, clean, proxy, tmp_path):
    wav = tmp_path / "two.wav"
    tone_wav(wav, [("tone", 0.5), ("silence", 0.5), ("tone", 0.5)])
    res = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "transcribe", wav)
    assert res["error"] == ""
    assert res["results"] == [{"reason": "RecognizedSpeech", "text": PHRASE, "speaker_id": "Guest-1"}] * 2
    reqs = service_requests(clean)
    # Host mode: /speech/universal/v2, mapped by the proxy.
    assert [(r["path"], r["query"]) for r in reqs] == [("/stt/speech/universal/v2", "language=en-US")]
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("version", VERSIONS)
def test_get_voices(version, clean, proxy):
    res = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "voices")
    assert res["reason"] == "VoicesListRetrieved", res
    assert res["voices"] == ["en-US-AvaMultilingualNeural", "en-US-AndrewNeural", "de-DE-KatjaNeural"]
    reqs = service_requests(clean)
    assert [(r["method"], r["path"], r["websocket"]) for r in reqs] == [("GET", "/tts/cognitiveservices/voices/list", False)]
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("version", VERSIONS)
def test_get_voices_with_a_root_endpoint_goes_to_https_port_443(version, clean, proxy):
    """The native SDK sends the voices list of a root endpoint to
    https://HOST:443 whatever the endpoint's scheme and port: use host=."""
    res = run_client(SDK_VERSIONS[version], "speech.py", "endpoint", proxy.ws, "voices")
    assert res["reason"] == "Canceled"
    assert "GET https://127.0.0.1/tts/cognitiveservices/voices/list" in res["error"]
    assert service_requests(clean) == []


#: Output formats an app sets with set_speech_synthesis_output_format, and
#: what it gets for "Twelve chars" (600 ms): PCM at the rate (riff: the SDK's
#: 46-byte header first), or whole MP3 frames covering the duration with
#: their Layer III header.
FORMATS = [
    ("Raw24Khz16BitMonoPcm", 28800, "00009703"),
    ("Riff24Khz16BitMonoPcm", 46 + 28800, "52494646"),
    ("Raw8Khz16BitMonoPcm", 9600, "0000950a"),
    ("Audio16Khz32KBitRateMonoMp3", 17 * 144, "fff348c0"),  # MPEG-2, 576 samples a frame
    ("Audio24Khz48KBitRateMonoMp3", 25 * 144, "fff364c0"),
    ("Audio48Khz192KBitRateMonoMp3", 25 * 576, "fffbb4c0"),  # MPEG-1, 1152 samples a frame
]


@pytest.mark.parametrize("fmt,size,head", FORMATS)
@pytest.mark.parametrize("version", VERSIONS)
def test_output_formats(version, fmt, size, head, clean, proxy):
    res = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "synthesize-format", fmt, "Twelve chars")
    assert (res["reason"], res["audio_bytes"], res["head"]) == ("SynthesizingAudioCompleted", size, head), res["error"]
    assert [r["path"] for r in service_requests(clean)] == ["/tts/cognitiveservices/websocket/v1"]
