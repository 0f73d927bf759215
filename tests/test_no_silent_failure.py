"""No silent failure (issue 21.6): a failed CUDA synchronize flags the reading and logs, and every broad
``except Exception`` / ``except BaseException`` in sprout_core either re-raises or logs its reason through
the ``sprout`` logger."""
from __future__ import annotations

import ast
import logging
import time
from pathlib import Path

import pytest

from sprout_core.energy.base import FLAG_SYNC_FAILED, EnergyMeter, Sample

ROOT = Path(__file__).resolve().parent.parent
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


class CountingMeter(EnergyMeter):
    """A fake counter meter on a CUDA device: 10 W, exact."""

    name = "fake-counter"
    method = "measured:fake"

    def __init__(self, device: str = "cuda:0") -> None:
        super().__init__(device)
        self.t0 = time.perf_counter()

    def sample(self) -> Sample:
        t = time.perf_counter()
        return Sample(t, 10.0 * (t - self.t0), 10.0)

    def describe(self) -> str:
        return "fake counter"


def _fake_torch(monkeypatch, fail: bool):
    torch = pytest.importorskip("torch")
    calls = []

    def sync(device=None):
        calls.append(device)
        if fail:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    return calls


def test_failed_cuda_sync_flags_the_reading_and_logs(monkeypatch, caplog):
    calls = _fake_torch(monkeypatch, fail=True)
    m = CountingMeter()
    with caplog.at_level(logging.WARNING, logger="sprout"):
        with m.window(live=False) as w:
            time.sleep(0.01)
    assert calls == ["cuda:0", "cuda:0"]             # both ends of the window tried to synchronize
    assert FLAG_SYNC_FAILED in w.reading.flags
    assert "CUDA synchronize failed" in w.reading.source and "illegal memory access" in w.reading.source
    assert w.reading.energy_j is not None and w.reading.energy_j > 0   # the reading is kept, but marked
    assert any("CUDA synchronize failed on cuda:0" in r.getMessage() for r in caplog.records)
    assert all(r.name.startswith("sprout") for r in caplog.records if "synchronize" in r.getMessage())


def test_working_sync_leaves_no_flag(monkeypatch, caplog):
    calls = _fake_torch(monkeypatch, fail=False)
    with caplog.at_level(logging.WARNING, logger="sprout"):
        with CountingMeter().window(live=False) as w:
            time.sleep(0.01)
    assert calls == ["cuda:0", "cuda:0"]
    assert FLAG_SYNC_FAILED not in w.reading.flags and not caplog.records
    # a CPU meter never synchronizes
    with CountingMeter("cpu").window(live=False) as w2:
        pass
    assert calls == ["cuda:0", "cuda:0"] and FLAG_SYNC_FAILED not in w2.reading.flags


def _broad(handler: ast.ExceptHandler) -> bool:
    t = handler.type
    names = [t] if not isinstance(t, ast.Tuple) else list(t.elts)
    return t is None or any(isinstance(n, ast.Name) and n.id in ("Exception", "BaseException") for n in names)


def _logs_or_raises(handler: ast.ExceptHandler) -> bool:
    for node in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
        if isinstance(node, ast.Raise):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS:
            return True
    return False


def silent_handlers(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "sprout_core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and _broad(node) and not _logs_or_raises(node):
                out.append(f"{path.relative_to(root)}:{node.lineno}")
    return out


def test_every_broad_handler_logs_or_reraises():
    found = silent_handlers(ROOT)
    assert not found, "broad handlers that neither log (the 'sprout' logger) nor re-raise:\n" + "\n".join(found)


def test_the_rule_sees_a_silent_handler(tmp_path):
    (tmp_path / "sprout_core").mkdir()
    (tmp_path / "sprout_core" / "m.py").write_text(
        "import logging\nlog = logging.getLogger('sprout')\n"
        "try:\n    pass\nexcept Exception:\n    pass\n"                       # silent: found
        "try:\n    pass\nexcept (ValueError, BaseException):\n    x = 1\n"     # silent: found
        "try:\n    pass\nexcept Exception as e:\n    log.debug('why: %s', e)\n"  # logs
        "try:\n    pass\nexcept BaseException:\n    raise\n"                  # re-raises
        "try:\n    pass\nexcept ValueError:\n    pass\n")                     # narrow: not this rule's
    assert silent_handlers(tmp_path) == ["sprout_core/m.py:5", "sprout_core/m.py:9"]
