"""Which meter measures a serving engine, labelled by method — and never a guess for a remote one.

:func:`server_meter` picks, for the server in a :class:`~sprout_core.serving.config.ServerConfig`:

==========================================  ===============================================  ==========================
where the server runs                       meter                                            label
==========================================  ===============================================  ==========================
another machine                             none: energy ``n/a (remote server)``             ``n/a`` + ``remote-server``
here, GPU indices given                     NVML counters of those GPUs, summed              ``measured:nvml-counter``
here, its process found on GPUs (NVML)      NVML counters of the GPUs its processes use      ``measured:nvml-counter``
here, CPU only, RAPL readable               RAPL package (+ DRAM) counters                   ``measured:rapl``
here, CPU only, no RAPL                     CPU time of the *server's* processes × W/core    ``estimated:cpu-tdp``
here, but its process cannot be found       none, with what to set                           ``n/a``
==========================================  ===============================================  ==========================

Several Sprout processes metering one local server share a :class:`~sprout_core.energy.attribution.ServerLedger`
(:func:`server_ledger`), so their requests' energies add up to what the server used (the cross-process
share is an estimate from token rates, flagged so).

The server's process is ``SPROUT_SERVER_PID`` or the one listening on the URL's port (psutil);
its children count too (vLLM runs the engine in a child process). The result is always an
:class:`~sprout_core.energy.AttributedMeter`, so overlapping requests split the energy by tokens.
Each meter's :attr:`notes` say why the other sources were not used.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from sprout_core.energy import AttributedMeter, EnergyMeter, NullMeter, detect_meter, resolve_cpu_model
from sprout_core.energy.attribution import ServerLedger
from sprout_core.energy.base import FLAG_REMOTE
from sprout_core.energy.cpu import CpuTdpMeter
from sprout_core.energy.process import ProcessCpuClock, ProcessNotFoundError, pid_listening_on, process_label
from sprout_core.serving.config import ENV_GPUS, ENV_PID, ServerConfig, is_local_host

_log = logging.getLogger("sprout.serving.energy")


class RemoteServerMeter(NullMeter):
    """A server on another machine: its energy is ``n/a (remote server)``, never estimated from here."""

    name = "remote-server"
    base_flags = (FLAG_REMOTE,)

    def __init__(self, address: str) -> None:
        super().__init__("server", f"the server at {address} runs on another machine")
        self.address = address

    def describe(self) -> str:
        return (f"n/a (remote server): the server at {self.address} runs on another machine, whose energy this "
                "machine cannot read; Sprout shows no number rather than a guess")


def server_meter(cfg: ServerConfig, *, prefer: str | None = None, local: bool | None = None, nvml_module: Any = None,
                 powercap_root: str | Path | None = None, cpu_model: Any = None, per_core_w: float | None = None,
                 tdp_w: float | None = None, cores: int | None = None, allow_estimate: bool = True,
                 pid_finder=pid_listening_on) -> AttributedMeter:
    """The meter of ``cfg``'s server (see the module table), wrapped for token attribution.

    ``prefer``: a backend name as in :func:`sprout_core.energy.detect_meter` (``none`` switches off);
    ``local``: override the host check; ``nvml_module``/``powercap_root``/``pid_finder``: for tests.
    """
    inner = _inner_meter(cfg, prefer, local, nvml_module, powercap_root, cpu_model, per_core_w, tdp_w, cores,
                         allow_estimate, pid_finder)
    return AttributedMeter(inner, ledger=server_ledger(cfg) if inner.available else None)


def server_ledger(cfg: ServerConfig) -> ServerLedger | None:
    """The cross-process ledger of ``cfg``'s server (``<state>/serving/ledger-<host>-<port>.json``): every
    Sprout process metering the server lists its requests in flight there, so their energies add up to
    what the server used (:mod:`sprout_core.energy.attribution`). ``None`` when the state folder is unusable
    (then each process splits alone, as before)."""
    from sprout_core.errors import StoreError
    from sprout_core.paths import state_dir

    try:
        folder = state_dir(create=True) / "serving"
    except StoreError:
        return None
    host = re.sub(r"[^A-Za-z0-9.-]", "_", cfg.host) or "server"
    return ServerLedger(folder / f"ledger-{host}-{cfg.port}.json")


def _inner_meter(cfg, prefer, local, nvml_module, powercap_root, cpu_model, per_core_w, tdp_w, cores, allow_estimate,
                 pid_finder) -> EnergyMeter:
    notes: list[str] = []

    def done(m: EnergyMeter) -> EnergyMeter:
        m.notes = notes + list(m.notes)
        return m

    if cfg.energy == "none" or prefer == "none":
        return done(NullMeter("server", "energy metering of the server switched off"))
    if not (is_local_host(cfg.host) if local is None else local):
        return done(RemoteServerMeter(cfg.address))
    gpu_prefer = prefer if prefer in ("nvml-counter", "nvml-power") else None
    if cfg.gpu_indices:
        m = detect_meter("cuda", nvml_indices=list(cfg.gpu_indices), prefer=gpu_prefer, nvml_module=nvml_module)
        return done(m)
    pid = cfg.pid
    if pid is None:
        try:
            pid = pid_finder(cfg.port)
        except Exception as exc:  # noqa: BLE001 - psutil restrictions: say so, keep going
            _log.warning("psutil restrictions: say so, keep going: %s", exc)
            notes.append(f"could not look up the process on port {cfg.port}: {exc}")
        if pid is None:
            notes.append(f"no process of this user listens on port {cfg.port}")
    tree = _process_tree(pid) if pid else set()
    gpus, why = _gpus_of(tree, nvml_module)
    if gpus:
        return done(detect_meter("cuda", nvml_indices=gpus, prefer=gpu_prefer, nvml_module=nvml_module))
    if why == "no-pid":
        return done(NullMeter("server", f"this machine has NVIDIA GPUs but the server's process was not found (port "
                                        f"{cfg.port}), so which GPUs it uses is unknown: set {ENV_GPUS} (NVML indices, "
                                        f"e.g. 0,1) or {ENV_PID}"))
    if why == "ambiguous":
        return done(NullMeter("server", f"the GPUs run processes this user cannot see (e.g. in a container), so which "
                                        f"GPUs the server uses is unknown: set {ENV_GPUS} (NVML indices, e.g. 0,1)"))
    if why:
        notes.append(why)
    # CPU-only server on this machine
    model = resolve_cpu_model(cpu_model, per_core_w=per_core_w, tdp_w=tdp_w, cores=cores)
    if prefer in (None, "rapl"):
        m = detect_meter("cpu", prefer="rapl", powercap_root=powercap_root, allow_estimate=False)
        notes.extend(m.notes)
        if m.available:
            m.notes = []
            return done(m)
    if not allow_estimate:
        return done(NullMeter("server", "no measured source for the server and estimates switched off"))
    if pid is None:
        return done(NullMeter("server", f"the server's process was not found (port {cfg.port}), so its CPU time cannot "
                                        f"be read: set {ENV_PID} to its process id"))
    try:
        clock = ProcessCpuClock(pid)
    except ProcessNotFoundError as exc:
        return done(NullMeter("server", str(exc)))
    return done(CpuTdpMeter("cpu", model, cpu_time=clock, subject=f"server process {process_label(pid)} and its children"))


def _process_tree(pid: int) -> set[int]:
    try:
        import psutil

        p = psutil.Process(pid)
        return {pid} | {c.pid for c in p.children(recursive=True)}
    except Exception as exc:  # noqa: BLE001 - gone or unreadable: just the pid
        _log.warning("gone or unreadable: just the pid: %s", exc)
        return {pid}


def _gpus_of(pids: set[int], nvml_module: Any) -> tuple[list[int], str | None]:
    """NVML indices of GPUs running any of ``pids``; else ``([], reason)``: ``"no-pid"`` (GPUs here, server
    process unknown) or ``"ambiguous"`` (GPUs run processes invisible to this user, e.g. in a container),
    where calling the server CPU-only would be a guess; otherwise a note why it is CPU-only."""
    from sprout_core.energy import nvml as nv

    try:
        module = nv.load_nvml(nvml_module)
        count = int(module.nvmlDeviceGetCount())
    except Exception as exc:  # noqa: BLE001 - no NVIDIA driver: a CPU machine
        _log.warning("no NVIDIA driver: a CPU machine: %s", exc)
        return [], f"no NVIDIA GPU readable ({exc}): treating the server as CPU-only"
    if count == 0:
        return [], "NVML sees no GPU: treating the server as CPU-only"
    found, invisible = [], False
    for i in range(count):
        h = module.nvmlDeviceGetHandleByIndex(i)
        procs = []
        for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                procs += list(getattr(module, fn)(h))
            except Exception as exc:  # noqa: BLE001 - not supported on this GPU/driver
                _log.warning("not supported on this GPU/driver: %s", exc)
                continue
        gpids = {int(getattr(p, "pid", -1)) for p in procs}
        if gpids & pids:
            found.append(i)
        elif gpids and not all(_pid_visible(p) for p in gpids):
            invisible = True
    if found:
        return found, None
    if not pids:
        return [], "no-pid"
    if invisible:
        return [], "ambiguous"
    return [], f"the server's processes ({', '.join(map(str, sorted(pids)))}) use none of the {count} GPUs: CPU-only server"


def _pid_visible(pid: int) -> bool:
    try:
        import psutil

        return psutil.pid_exists(pid)
    except Exception as exc:  # noqa: BLE001 - psutil missing or restricted: the process counts as gone
        _log.warning("process not readable, treated as gone: %s", exc)
        return False
