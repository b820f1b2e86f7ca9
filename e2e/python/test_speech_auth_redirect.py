"""The native Speech SDK through entraproxy to a fake that accepts only the
aad#<resource id># form (ENTRAPROXY_AUTH_FORMAT=auto learns it), and to a
fake that redirects the synthesis handshake to its regional listener with
301, 307 or 308: the SDK never sees the 3xx, so the native SDK's in-process
redirect cache (301 and 308 are kept for days, keyed by the URL) never learns
an address that bypasses the proxy."""

import pytest

from audio import expected_pcm_bytes, tone_wav
from harness import SDK_VERSIONS, Fake, Proxy, assert_clean_upstream, run_client, service_requests

VERSIONS = list(SDK_VERSIONS)


@pytest.fixture(scope="module")
def aad_fake(module_tmp):
    f = Fake(["-auth", "aad"], module_tmp)
    yield f
    f.stop()


@pytest.mark.parametrize("version", VERSIONS)
def test_aad_only_resource_with_auto(version, aad_fake, module_tmp, tmp_path):
    proxy = Proxy(aad_fake, tmp_path, env={"ENTRAPROXY_RESOURCE_ID": aad_fake.info["resource_id"]})
    try:
        aad_fake.reset()
        text = "Speech wants the aad form."
        tts = run_client(SDK_VERSIONS[version], "speech.py", "host-key", proxy.ws, "synthesize-repeat", 1, text)
        assert tts["turns"] == [{"reason": "SynthesizingAudioCompleted", "audio_bytes": 46 + expected_pcm_bytes(text), "error": ""}]
        wav = tmp_path / "hello.wav"
        tone_wav(wav, [("tone", 1.0)])
        stt = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "recognize", wav)
        assert (stt["reason"], stt["text"]) == ("RecognizedSpeech", "Hello from the fake Azure.")
        reqs = service_requests(aad_fake)
        # bearer first, one 401, one retry in the aad form; then remembered.
        assert [(r["path"], r["form"], r["status"]) for r in reqs] == [
            ("/tts/cognitiveservices/websocket/v1", "bearer", 401),
            ("/tts/cognitiveservices/websocket/v1", "aad", 101),
            ("/stt/speech/recognition/interactive/cognitiveservices/v1", "aad", 101),
        ]
        assert_clean_upstream(reqs[1:], proxy.issued(), form="aad")
    finally:
        proxy.stop()


@pytest.mark.parametrize("status", [301, 307, 308])
@pytest.mark.parametrize("version", VERSIONS)
def test_redirected_handshake_never_reaches_the_sdk(version, status, module_tmp, tmp_path):
    fake = Fake(["-auth", "bearer", "-redirect", "-redirect-status", str(status)], tmp_path)
    proxy = Proxy(fake, tmp_path, env={"ENTRAPROXY_REDIRECT_HOSTS": fake.info["regional"]})
    try:
        text = "Redirected."
        # Two synthesizers in one process: two connections. Had the SDK
        # seen the 301 or 308, it would send the second straight to the
        # regional address, without the proxy and its token (a 401 there).
        res = run_client(SDK_VERSIONS[version], "speech.py", "host", proxy.ws, "synthesize-twice", text)
        assert res["turns"] == [{"reason": "SynthesizingAudioCompleted", "audio_bytes": 46 + expected_pcm_bytes(text), "error": ""}] * 2
        reqs = service_requests(fake)
        assert [(r["listener"], r["status"]) for r in reqs] == [("custom", status), ("regional", 101)] * 2
        regional = [r for r in reqs if r["listener"] == "regional"]
        assert all("Ocp-Apim-Custom-Domain-Name=" in r["query"] for r in regional)
        assert_clean_upstream(reqs, proxy.issued())
        # The proxy logged two sessions, both through it.
        proxy.wait_logged("websocket", 2)
    finally:
        proxy.stop()
        fake.stop()
