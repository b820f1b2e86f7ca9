"""What the app reads when entraproxy refuses: per SDK and failure, the exact
text, written into e2e/README.md (section sdk-errors) by this test.

The failures: the proxy holds no token, the gateway key is wrong, the Host is
refused (DNS rebinding protection), a browser Origin is refused, the upstream
is unreachable. Native SDKs cannot send an Origin, so only openai (which can
add headers) meets that one."""

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from audio import tone_wav
from docs import cell, check_section
from harness import DUMMY_KEY, HERE, REPO, SDK_VERSIONS, Fake, Proxy, base_env, closing_listener, run_client, script_az

GATEWAY_KEY = "the-gateway-key-ENTRAPROXY-E2E"


def readyz(proxy):
    try:
        with urllib.request.urlopen(proxy.admin + "/readyz", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_not_ready(proxy, bound=60):
    """Waits until /readyz says 503: the one token has passed its expiry margin."""
    deadline = time.monotonic() + bound
    while readyz(proxy) != 503:
        assert time.monotonic() < deadline, f"/readyz still 200 after {bound} s"
        time.sleep(0.1)


def js_speech(base, wav):
    node_modules = REPO / "e2e" / "node_modules" / "microsoft-cognitiveservices-speech-sdk"
    assert node_modules.exists(), "e2e/node_modules is missing: run make e2e-python (it runs npm ci)"
    res = subprocess.run(["node", str(HERE / "clients" / "js_speech.mjs"), base, DUMMY_KEY, str(wav)],
                         env=base_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def subdir(parent, name):
    d = parent / name
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="module")
def scenarios(fake, module_tmp):
    """name -> (proxy address as clients use it, proxy, what the proxy answers)."""
    started, stops = {}, []
    try:
        # No token: az prints a token that leaves the proxy's 10 s expiry
        # margin five seconds later, then fails; the test waits for /readyz
        # to say so.
        az = script_az(module_tmp, f"""
mark={module_tmp}/az-used
if [ -e "$mark" ]; then echo "ERROR: Please run 'az login' to setup account." >&2; exit 1; fi
touch "$mark"
printf '{{"accessToken":"eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2lnbmF0dXJl","expires_on":%d,"tokenType":"Bearer"}}\\n' $(( $(date +%s) + 15 ))
""")
        p = Proxy(fake, module_tmp, az_dir=az)
        stops.append(p.stop)
        started["no token"] = (p.listen, p, "token_unavailable")

        p = Proxy(fake, subdir(module_tmp, "key"), env={"ENTRAPROXY_INBOUND_KEYS": GATEWAY_KEY})
        stops.append(p.stop)
        started["wrong gateway key"] = (p.listen, p, "inbound_key_invalid")

        p = Proxy(fake, subdir(module_tmp, "host"))
        stops.append(p.stop)
        started["Host refused"] = ("127.1:%d" % p.port, p, "host_not_allowed")
        started["Origin refused"] = (p.listen, p, "origin_not_allowed")

        addr, stop_listener = closing_listener()
        stops.append(stop_listener)
        p = Proxy(fake, subdir(module_tmp, "up"), env={"ENTRAPROXY_UPSTREAM": "http://" + addr})
        stops.append(p.stop)
        started["upstream unreachable"] = (p.listen, p, "upstream_unreachable")

        wait_not_ready(started["no token"][1])
        yield started
    finally:
        for s in reversed(stops):
            s()


#: A part of the proxy's message for each code, which the app must read.
MESSAGE = {
    "token_unavailable": "entraproxy holds no valid Entra ID token",
    "inbound_key_invalid": "not one of this gateway's ENTRAPROXY_INBOUND_KEYS",
    "host_not_allowed": "DNS rebinding protection",
    "origin_not_allowed": "add it to ENTRAPROXY_ALLOWED_ORIGINS",
    "upstream_unreachable": "the upstream",
}

PROXY_ANSWER = {
    "token_unavailable": "503 `token_unavailable`",
    "inbound_key_invalid": "401 `inbound_key_invalid`",
    "host_not_allowed": "403 `host_not_allowed`",
    "origin_not_allowed": "403 `origin_not_allowed`",
    "upstream_unreachable": "502 `upstream_unreachable`",
}


def test_sdk_visible_error_texts(scenarios, tmp_path):
    wav = tmp_path / "hello.wav"
    tone_wav(wav, [("tone", 1.0)])
    rows = []
    for failure, (addr, proxy, code) in scenarios.items():
        texts = []  # (sdk, text, must show the proxy's message)
        if failure != "Origin refused":
            for version, python in SDK_VERSIONS.items():
                res = run_client(python, "speech.py", "host-key", "ws://" + addr, "errors", wav)
                texts.append((f"Speech SDK {version} (Python), synthesis", res["tts"], True))
                texts.append((f"Speech SDK {version} (Python), recognition", res["stt"], True))
            res = run_client(SDK_VERSIONS["1.53.0"], "speech.py", "host-key", "ws://" + addr, "voices")
            texts.append(("Speech SDK 1.53.0 (Python), get_voices_async (REST)", res["error"], False))
            res = js_speech("ws://" + addr, wav)
            if failure == "Host refused":
                # The WHATWG URL parser writes 127.1 as 127.0.0.1: the Host
                # is then an allowed one and both succeed.
                assert (res["tts"], res["stt"]) == ("", ""), res
                texts.append(("Speech SDK 1.52.0 (JavaScript, Node)", "(no error: new URL() turns 127.1 into 127.0.0.1, an allowed Host)", False))
            else:
                texts.append(("Speech SDK 1.52.0 (JavaScript, Node), synthesis", res["tts"], False))
                texts.append(("Speech SDK 1.52.0 (JavaScript, Node), recognition", res["stt"], False))
        origin = "https://evil.example" if failure == "Origin refused" else None
        res = run_client(SDK_VERSIONS["1.53.0"], "openai_chat.py", "http://" + addr, *([origin] if origin else []))
        texts.append(("openai 3.57.0 (Python), AzureOpenAI", res["error"], True))
        for sdk, text, shows in texts:
            assert text, f"{failure}, {sdk}: the app read no error"
            if shows:
                assert MESSAGE[code] in text, f"{failure}, {sdk}: {text!r} does not carry the proxy's message"
            rows.append(f"| {failure} | {PROXY_ANSWER[code]} | {sdk} | {cell(text)} |\n")
    table = "| failure | the proxy's error | client | what the app reads |\n|---|---|---|---|\n" + "".join(rows)
    check_section("e2e/README.md", "sdk-errors", table)
