"""make demo, Python part: the program of the report this project started
from (Speech SDK for Python, 1.45.0 and the newest), its SpeechConfig line
changed to point at entraproxy, against a local fake Azure whose synthesis
wants the aad# form. Prints what the program printed and what crossed the
proxy, writes the audio to bin/demo-seed-<version>.wav."""

import subprocess
import sys
import tempfile
from pathlib import Path

from harness import BIN, HERE, SDK_VERSIONS, Fake, Proxy, base_env, service_requests

SEED_LINE = "speech_config = speechsdk.SpeechConfig(token_credential=credential, endpoint=endpoint)"


def main():
    tmp = Path(tempfile.mkdtemp(prefix="entraproxy-demo-"))
    fake = Fake(["-auth", "bearer", "-tts-auth", "aad"], tmp)
    proxy = None
    try:
        proxy = Proxy(fake, tmp, env={"ENTRAPROXY_RESOURCE_ID": fake.info["resource_id"], "ENTRAPROXY_LOG_LEVEL": "info"})
        line = f'speech_config = speechsdk.SpeechConfig(host="ws://{proxy.listen}")'
        print(f"fake Azure   {fake.url}  (recognition takes Bearer <jwt>, synthesis only Bearer aad#<resource id>#<jwt>; no keys)")
        print(f"entraproxy   {proxy.http}  (ENTRAPROXY_AUTH_FORMAT=auto, ENTRAPROXY_RESOURCE_ID set)")
        print(f"the seed program (e2e/python/clients/seed.py) with one line changed:\n    {SEED_LINE}\n -> {line}\n")
        src = (HERE / "clients" / "seed.py").read_text().replace(SEED_LINE, line)
        program = tmp / "seed_through_entraproxy.py"
        program.write_text(src)
        ok = True
        for version, python in SDK_VERSIONS.items():
            fake.reset()
            wav = BIN / f"demo-seed-{version}.wav"
            env = base_env()
            env.update({"SEED_ENDPOINT": "unused", "SEED_WAV": str(wav)})
            res = subprocess.run([str(python), str(program)], env=env, capture_output=True, text=True, timeout=120)
            print(f"Speech SDK {version} (Python):")
            for out in res.stdout.splitlines()[:-1]:
                print("   program: " + out)
            ok = ok and res.returncode == 0 and res.stdout.startswith("Speech synthesized")
            if wav.exists():
                print(f"   audio:   {wav.relative_to(BIN.parent)} ({wav.stat().st_size} bytes)")
            print("   what crossed the proxy, as the upstream saw it (the fake redacts the token):")
            for r in service_requests(fake):
                print(f"     GET {r['path']}{'?' + r['query'] if r['query'] else ''} -> {r['status']}"
                      f"{' (' + r['reject'] + ')' if r.get('reject') else ''}")
                print(f"       Authorization: {r['header'].get('Authorization', ['(none)'])[0]}")
                print(f"       User-Agent: {r['header'].get('User-Agent', [''])[0]}")
            print()
        return 0 if ok else 1
    finally:
        if proxy:
            proxy.stop()
        fake.stop()


if __name__ == "__main__":
    sys.exit(main())
