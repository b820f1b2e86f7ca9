#!/usr/bin/env bash
# Creates the Python end-to-end suite's virtual environments from the lock
# files, with pip --require-hashes, and re-uses each one while its lock file
# is unchanged (a copy of the lock inside the venv is the stamp):
#
#   e2e/python/.venv                    requirements.txt: pytest, the newest
#                                       Speech SDK, azure-identity, openai,
#                                       the Translator, Language and LangChain clients
#   e2e/python/.venv-speech-1.45.0      requirements-speech-1.45.0.txt: the seed's SDK
#
# Two environments because one environment holds one version of a package.
# Also installs the native Speech SDK's Linux libraries (OpenSSL 3,
# ca-certificates, ALSA) with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/../e2e/python"

PYTHON=${PYTHON:-python3}

# The native Speech SDK loads libssl.so.3 and libasound.so.2 at run time
# (https://learn.microsoft.com/azure/ai-services/speech-service/quickstarts/setup-platform?pivots=programming-language-python).
missing=()
ldconfig -p 2>/dev/null | grep -q 'libssl\.so\.3 ' || missing+=(libssl3)
ldconfig -p 2>/dev/null | grep -q 'libasound\.so\.2 ' || missing+=(libasound2)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || { echo "python-env: missing ${missing[*]}; install them with apt-get as root" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "python-env: installing ${missing[*]}"
	lock=()
	command -v flock >/dev/null 2>&1 && lock=(flock /tmp/apt.lock)
	"${sudo[@]}" "${lock[@]}" apt-get update -qq
	"${sudo[@]}" "${lock[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# venv DIR LOCK: (re)creates DIR from LOCK unless DIR/lock.txt equals LOCK.
venv() {
	local dir=$1 lockfile=$2
	if [ -x "$dir/bin/python" ] && cmp -s "$lockfile" "$dir/lock.txt"; then
		return
	fi
	echo "python-env: creating $dir from $lockfile"
	rm -rf "$dir"
	"$PYTHON" -m venv "$dir"
	"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
		--require-hashes --no-deps --only-binary=:all: -r "$lockfile"
	cp "$lockfile" "$dir/lock.txt"
}

venv .venv requirements.txt
venv .venv-speech-1.45.0 requirements-speech-1.45.0.txt
