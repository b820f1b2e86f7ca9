"""Tables in the project's docs that tests produce: a test renders what it
measured and compares it with the section between <!-- NAME:begin --> and
<!-- NAME:end -->; ENTRAPROXY_UPDATE_DOCS=1 writes it instead (then review the
diff). So no result in those tables is typed by hand."""

import os
import re

from harness import REPO

UPDATE = os.environ.get("ENTRAPROXY_UPDATE_DOCS") == "1"


def normalize(text):
    """Replaces what changes from run to run: ports, connection and session
    ids, request ids."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"127\.1:\d+", "127.1:PORT", text)
    # The native SDK shows the bytes of the body that came in the same
    # 64-byte read as the end of the headers: how many depends on how the
    # answer was split on its way, so it is not compared.
    text = re.sub(r"(Content-Type: application/json\n)\{.*?( Please (?:check|verify))", r"\1<first bytes of the body>\2", text, flags=re.S)
    text = re.sub(r"localhost:\d+", "localhost:PORT", text)
    text = re.sub(r"\b[0-9a-fA-F]{32}\b", "<id>", text)
    return text


def cell(text):
    """text as a Markdown table cell: code, one line."""
    text = normalize(text).replace("\r", "").replace("\n", "⏎")
    if not text:
        return "(empty)"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def check_section(relpath, name, body):
    path = REPO / relpath
    text = path.read_text()
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    assert begin in text and end in text, f"{relpath} has no {name} markers"
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    new = before + begin + body + end + after
    if UPDATE:
        path.write_text(new)
        return
    assert new == text, (f"{relpath}, section {name}, is not what the test measured:\n{body}\n"
                         f"rerun with ENTRAPROXY_UPDATE_DOCS=1 to write it, and review the diff")
