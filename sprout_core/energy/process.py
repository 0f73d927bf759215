"""CPU time of *another* process tree (a serving engine on this machine), for the CPU estimate.

A CPU-only server (llama.cpp, Ollama) burns its CPU time in its own processes, not in Sprout's: the
estimate of its energy must count the server's CPU seconds. :class:`ProcessCpuClock` sums user +
system CPU time of a process and all its descendants (read with ``psutil``), monotonic even when a
worker exits (its last reading is kept). :func:`pid_listening_on` finds the process that listens on
a TCP port of this machine.

``psutil`` is imported on first use, so importing :mod:`sprout_core.energy` stays light.
"""
from __future__ import annotations

import logging
import threading

from sprout_core.errors import EnergyError

_log = logging.getLogger("sprout.energy.process")


class ProcessNotFoundError(EnergyError):
    """The server's process cannot be found or read; the message says what to set."""


def _psutil():
    try:
        import psutil
    except ImportError as exc:  # pragma: no cover - psutil is a requirement
        raise ProcessNotFoundError("psutil is not installed: cannot read another process's CPU time") from exc
    return psutil


def pid_listening_on(port: int) -> int | None:
    """PID of the process listening on TCP ``port`` here (``None`` if none is visible to this user)."""
    psutil = _psutil()
    port = int(port)
    try:
        for c in psutil.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return int(c.pid)
    except (psutil.AccessDenied, OSError):
        pass  # some systems list only one's own processes' sockets: ask each process
    for proc in psutil.process_iter():
        try:
            for c in proc.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                    return int(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    return None


def process_label(pid: int) -> str:
    """``"1234 (python -m llama_cpp.server)"``-style name of a process, for descriptions."""
    psutil = _psutil()
    try:
        p = psutil.Process(pid)
        cmd = " ".join(p.cmdline()[:3]) or p.name()
    except (psutil.Error, OSError):
        cmd = "?"
    return f"{pid} ({cmd[:60]})"


class ProcessCpuClock:
    """Callable: CPU seconds (user + system) used so far by process ``pid`` and its descendants.

    Children that exit keep their last reading, so the value never goes down. Raises
    :class:`ProcessNotFoundError` if ``pid`` does not exist or cannot be read.
    """

    def __init__(self, pid: int) -> None:
        psutil = _psutil()
        self.pid = int(pid)
        try:
            self._proc = psutil.Process(self.pid)
            self._proc.cpu_times()
        except psutil.NoSuchProcess as exc:
            raise ProcessNotFoundError(f"no process with PID {pid} on this machine") from exc
        except (psutil.AccessDenied, OSError) as exc:
            raise ProcessNotFoundError(f"cannot read the CPU time of process {pid} ({exc}); run Sprout as the same user "
                                       "as the server") from exc
        self._seen: dict[int, float] = {}
        self._lock = threading.Lock()

    def __call__(self) -> float:
        psutil = _psutil()
        with self._lock:
            try:
                procs = [self._proc] + self._proc.children(recursive=True)
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                try:
                    ct = p.cpu_times()
                    self._seen[p.pid] = max(self._seen.get(p.pid, 0.0), float(ct.user + ct.system))
                except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                    continue
            return sum(self._seen.values())

    @property
    def alive(self) -> bool:
        try:
            return self._proc.is_running()
        except Exception as exc:  # noqa: BLE001 - psutil missing or the process unreadable: treated as gone
            _log.debug("process not readable, treated as gone: %s", exc)
            return False
