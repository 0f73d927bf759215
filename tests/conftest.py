"""Shared test fixtures.

Every test runs with its own state folder (SQLite database, caches) so tests never see a
developer's data, and with Hugging Face forced offline.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# The app's default backend for the embedded model is llama.cpp when it is installed, transformers when not
# (sprout_core.backends.embedded_default): pin it, so a test means the same on every machine. Tests of the
# default itself unset it; tests of llama.cpp ask for it by name.
os.environ["SPROUT_EMBEDDED_BACKEND"] = "transformers"


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch):
    """A fresh SPROUT_STATE_DIR per test; the model cache is shared across the session."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SPROUT_STATE_DIR", str(state))
    yield state


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch) -> Path:
    """No public data at all (SPROUT_DATA_DIR is an empty folder): what a fresh clone with no ../shared beside
    it sees. Everything must then come from the data shipped in data/ (or be one of the optional texts)."""
    empty = tmp_path / "no-public-data"
    empty.mkdir()
    monkeypatch.setenv("SPROUT_DATA_DIR", str(empty))
    return empty


def public_data_available(*parts: str) -> bool:
    """True when the public data (``data/external`` or ``SPROUT_DATA_DIR``) has this path."""
    from sprout_core.paths import public_data_dir

    return public_data_dir().joinpath(*parts).exists()


@pytest.fixture(scope="session")
def tiny_llama2_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a Llama-2-chat template (directives in the system message)."""
    from tests.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama-2-chat", style="llama2")


@pytest.fixture(scope="session")
def tiny_chatml_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a ChatML template (unknown model: default placement)."""
    from tests.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chatml", style="chatml")


@pytest.fixture(scope="session")
def tiny_lm(tiny_llama2_dir):
    """The tiny Llama-2-style model, loaded once per test session."""
    from sprout_core.models import load_local

    return load_local(tiny_llama2_dir, device="cpu")


@pytest.fixture(scope="session")
def embedded_lm():
    """The embedded SmolLM2-135M-Instruct through transformers, loaded once per test session (from the
    safetensors cache that set-up writes; converted from the GGUF here if that cache is missing)."""
    from sprout_core.models import load_embedded

    return load_embedded()
