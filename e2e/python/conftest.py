import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Fake, Proxy  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "sdk(version): a Speech SDK version the test runs")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("m")


@pytest.fixture(scope="module")
def fake(module_tmp):
    """A fake that accepts only the bearer form, like a custom domain."""
    f = Fake(["-auth", "bearer"], module_tmp)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def proxy(fake, module_tmp):
    p = Proxy(fake, module_tmp)
    yield p
    p.stop()


@pytest.fixture
def clean(fake):
    """Forgets the fake's requests so a test sees only its own."""
    fake.reset()
    return fake
