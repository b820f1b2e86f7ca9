"""The report this project started from, reproduced and cured side by side.

The seed program (clients/seed.py: SpeechConfig(token_credential=
AzureCliCredential(), endpoint=<custom domain>), synthesis) runs unchanged,
straight at the fake Azure's TLS listener, with its test CA trusted through
SSL_CERT_FILE and the fake's az on PATH for AzureCliCredential. The fake plays
the service of the report: recognition takes an Entra ID token in the bearer
form, synthesis only in the aad#<resource id># form. Then the same program
with its SpeechConfig line changed to host="ws://<entraproxy>". The table of
what each SDK version did goes into the README's first screen."""

import json
import subprocess

import pytest

from audio import expected_pcm_bytes, read_wav, tone_wav
from docs import cell, check_section
from harness import HERE, SDK_VERSIONS, Fake, Proxy, base_env, service_requests
from test_speech import SEED_TEXT, seed_variant

SEED_ERROR = ("WebSocket upgrade failed: Authentication error (401). Please check subscription information "
              "and region name. USP state: Sending. Received audio size: 0 bytes.")


@pytest.fixture(scope="module")
def seed_fake(module_tmp):
    f = Fake(["-auth", "bearer", "-tts-auth", "aad", "-tls-ca", str(module_tmp / "ca.pem")], module_tmp)
    yield f
    f.stop()


def run(python, program, env):
    e = base_env()
    e.update(env)
    res = subprocess.run([str(python), str(program)], env=e, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{program} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout.splitlines()[-1])


def test_seed_direct_and_through_entraproxy(seed_fake, module_tmp, tmp_path):
    direct_env = {
        "PATH": f"{seed_fake.info['az_dir']}:{base_env()['PATH']}",
        "SSL_CERT_FILE": seed_fake.info["ca_file"],
        "SEED_ENDPOINT": seed_fake.info["tls_url"],
    }
    wav_in = tmp_path / "hello.wav"
    tone_wav(wav_in, [("tone", 1.0)])
    proxy = Proxy(seed_fake, module_tmp, env={"ENTRAPROXY_RESOURCE_ID": seed_fake.info["resource_id"]})
    rows = []
    try:
        for version, python in SDK_VERSIONS.items():
            seed_fake.reset()
            stt = run(python, HERE / "clients" / "seed_recognize.py", {**direct_env, "SEED_INPUT": str(wav_in)})
            tts = run(python, HERE / "clients" / "seed.py", {**direct_env, "SEED_WAV": str(tmp_path / "direct.wav")})
            direct = service_requests(seed_fake)
            assert stt["reason"] == "RecognizedSpeech" and stt["text"] == "Hello from the fake Azure.", stt
            assert (tts["reason"], tts["error"]) == ("Canceled", SEED_ERROR), tts
            # The SDK sent a bearer token on both handshakes; synthesis refused it.
            assert [(r["path"], r["form"], r["status"], r.get("reject", "")) for r in direct] == [
                ("/stt/speech/universal/v2", "bearer", 101, ""),
                ("/tts/cognitiveservices/websocket/v1", "bearer", 401, "wrong_form"),  # a 401 is not retried
            ]

            seed_fake.reset()
            program = seed_variant(tmp_path, f'speech_config = speechsdk.SpeechConfig(host="ws://{proxy.listen}")')
            wav_out = tmp_path / f"proxy-{version}.wav"
            cured = run(python, program, {"SEED_ENDPOINT": "unused", "SEED_WAV": str(wav_out)})
            assert cured["reason"] == "SynthesizingAudioCompleted", cured
            assert len(read_wav(wav_out)[3]) == expected_pcm_bytes(SEED_TEXT)
            via = service_requests(seed_fake)
            assert [(r["form"], r["status"]) for r in via] in (
                [("bearer", 401), ("aad", 101)],  # auto: bearer first, then aad#
                [("aad", 101)],  # the form learnt with the previous version
            )
            rows.append(f"| {version} | {stt['reason']}: {cell(stt['text'])} | {tts['reason']}: {cell(tts['error'])} "
                        f"| {cured['reason']}, {len(read_wav(wav_out)[3])} bytes of PCM |\n")
    finally:
        proxy.stop()
    table = ("| Speech SDK (Python) | seed config, recognition, straight to the service | seed program unchanged, straight to the service "
             "| seed program, `SpeechConfig(host=\"ws://127.0.0.1:8080\")`, through entraproxy |\n|---|---|---|---|\n" + "".join(rows))
    check_section("README.md", "seed-result", table)


@pytest.mark.parametrize("version", list(SDK_VERSIONS))
def test_seed_direct_against_a_resource_that_takes_bearer(version, module_tmp, tmp_path):
    """Against a resource whose synthesis takes the plain bearer form, the
    unchanged seed program synthesizes with 1.45.0 as with the newest: the
    old SDK does send the credential's token on the synthesis handshake."""
    fake = Fake(["-auth", "bearer", "-tls-ca", str(tmp_path / "ca.pem")], tmp_path)
    try:
        res = run(SDK_VERSIONS[version], HERE / "clients" / "seed.py", {
            "PATH": f"{fake.info['az_dir']}:{base_env()['PATH']}",
            "SSL_CERT_FILE": fake.info["ca_file"],
            "SEED_ENDPOINT": fake.info["tls_url"],
            "SEED_WAV": str(tmp_path / "out.wav"),
        })
        assert res["reason"] == "SynthesizingAudioCompleted", res
        reqs = service_requests(fake)
        assert [(r["host"].split(":")[0], r["path"], r["form"], r["status"]) for r in reqs] == [
            ("localhost", "/tts/cognitiveservices/websocket/v1", "bearer", 101)]
        assert reqs[0]["tokenSeq"] > 0
    finally:
        fake.stop()
