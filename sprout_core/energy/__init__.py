"""Energy of a request: one meter interface, several backends, picked automatically.

Public API::

    from sprout_core.energy import detect_meter, EnergyReading
    meter = detect_meter("cuda:0")          # or "cpu"
    with meter.window() as w:               # brackets one request (cuda sync before/after)
        for chunk in stream:                # while tokens stream:
            power_w, energy_j = w.live()    # W and J so far (None until the first sample)
    w.reading                               # EnergyReading(energy_j, method, source, duration_s, …)

Backends, in the order :func:`detect_meter` tries them:

======================  ==========================  =========================================
device                  backend (``meter.name``)    label (``meter.method``)
======================  ==========================  =========================================
``cuda:N``              NVML total-energy counter   ``measured:nvml-counter``
``cuda:N``              NVML power × time           ``measured:nvml-power``
``cpu``                 Linux RAPL (package + DRAM) ``measured:rapl``
``cpu``                 CPU time × per-core power   ``estimated:cpu-tdp``
anything else / none    —                           ``n/a`` (energy ``None``, never 0)
======================  ==========================  =========================================

A serving engine shares its device among concurrent requests: :mod:`sprout_core.energy.attribution`
wraps its meter so each request gets its share, split by tokens (``AttributedMeter``);
:mod:`sprout_core.energy.process` estimates another process's CPU energy (the server's, not ours).

Units: J, W, s.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sprout_core.energy.attribution import AttributedMeter, AttributedWindow, MeterSum, attribute, split_interval
from sprout_core.energy.base import (
    FLAG_COMPLETED_FROM_POWER,
    FLAG_METER_ERROR,
    FLAG_PROCESS_ONLY,
    FLAG_REMOTE,
    FLAG_SHARED,
    FLAG_SHORT_WINDOW,
    FLAG_TWO_POINT,
    FLAG_WHOLE_DEVICE,
    METHOD_CPU_TDP,
    METHOD_NONE,
    METHOD_NVML_COUNTER,
    METHOD_NVML_POWER,
    METHOD_RAPL,
    EnergyMeter,
    EnergyReading,
    EnergyWindow,
    NullMeter,
    Sample,
    integrate_power,
)
from sprout_core.energy.cpu import CPU_PRESETS, CpuPowerModel, CpuTdpMeter, resolve_cpu_model
from sprout_core.energy.sampler import configure_sampler, get_sampler

_log = logging.getLogger("sprout.energy")

__all__ = [
    "EnergyMeter", "EnergyReading", "EnergyWindow", "NullMeter", "Sample", "detect_meter", "integrate_power",
    "CpuPowerModel", "CPU_PRESETS", "resolve_cpu_model", "get_sampler", "configure_sampler",
    "METHOD_NVML_COUNTER", "METHOD_NVML_POWER", "METHOD_RAPL", "METHOD_CPU_TDP", "METHOD_NONE",
    "FLAG_SHORT_WINDOW", "FLAG_COMPLETED_FROM_POWER", "FLAG_METER_ERROR", "FLAG_TWO_POINT", "FLAG_WHOLE_DEVICE", "FLAG_PROCESS_ONLY",
    "FLAG_SHARED", "FLAG_REMOTE", "AttributedMeter", "AttributedWindow", "MeterSum", "attribute", "split_interval",
    "BACKENDS",
]

#: backend names accepted by ``detect_meter(prefer=...)``
BACKENDS = ("nvml-counter", "nvml-power", "rapl", "cpu-tdp", "none")


def detect_meter(device: str = "cpu", **options: Any) -> EnergyMeter:
    """The best available meter for ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``; others get n/a).

    Options:
      ``prefer``: a backend name from :data:`BACKENDS` to force (falls back with a note if unusable);
      ``allow_estimate`` (default True): allow ``estimated:cpu-tdp`` for ``cpu``;
      ``cpu_model`` (preset name or :class:`CpuPowerModel`), ``tdp_w``, ``cores``, ``per_core_w``,
      ``rel_uncertainty``: the CPU estimate's settings;
      ``powercap_root``: RAPL folder (default ``/sys/class/powercap``);
      ``nvml_module``: a ``pynvml``-like module (tests); ``cuda_identity``: a
      :class:`~sprout_core.energy.nvml.CudaIdentity` (else asked from torch);
      ``nvml_index``: use this NVML device index directly (for tools without torch CUDA; the
      torch device is then not consulted); ``nvml_indices``: several NVML indices read as one
      meter (their counters summed: a tensor-parallel server's GPUs);
      ``counter_period_s``: NVML counter update period, s (default 0.1).

    Never raises for a missing source: the returned meter's :attr:`~EnergyMeter.notes` say why each
    skipped backend was skipped, and a :class:`NullMeter` reports ``n/a``. Bad option values raise
    ``ValueError``.
    """
    prefer = options.get("prefer")
    if prefer is not None and prefer not in BACKENDS:
        raise ValueError(f"unknown energy backend {prefer!r}; choose one of {', '.join(BACKENDS)}")
    notes: list[str] = []
    dev = (device or "cpu").lower()
    if dev == "cuda":
        dev = "cuda:0"

    def done(meter: EnergyMeter) -> EnergyMeter:
        meter.notes = notes
        return meter

    if prefer == "none":
        return done(NullMeter(dev, "energy metering switched off"))

    if dev.startswith("cuda"):
        from sprout_core.energy import nvml as nv

        if options.get("nvml_indices"):
            return done(_nvml_sum(dev, [int(i) for i in options["nvml_indices"]], prefer, options, notes))
        try:
            module = nv.load_nvml(options.get("nvml_module"))
            if options.get("nvml_index") is not None:  # explicit NVML device (benchmarks without torch CUDA)
                idx = int(options["nvml_index"])
                if not 0 <= idx < int(module.nvmlDeviceGetCount()):
                    raise nv.NvmlError(f"NVML has no device index {idx}")
                handle, how = module.nvmlDeviceGetHandleByIndex(idx), f"explicit NVML index {idx}"
            else:
                ident = options.get("cuda_identity") or nv.torch_cuda_identity(dev)
                handle, how = nv.match_handle(module, ident)
        except nv.NvmlError as exc:
            notes.append(str(exc))
            return done(NullMeter(dev, f"GPU energy unknown: {exc}"))
        if prefer != "nvml-power":
            try:
                return done(nv.NvmlCounterMeter(dev, module, handle, how, float(options.get("counter_period_s", 0.1))))
            except Exception as exc:  # noqa: BLE001 - NVMLError_NotSupported on pre-Volta GPUs
                _log.warning("NVMLError_NotSupported on pre-Volta GPUs: %s", exc)
                notes.append(f"NVML energy counter not usable: {exc}")
        try:
            return done(nv.NvmlPowerMeter(dev, module, handle, how))
        except Exception as exc:  # noqa: BLE001 - NVML power not readable either: fall back to no meter, with the reason
            _log.warning("NVML power readings not usable: %s", exc)
            notes.append(f"NVML power readings not usable: {exc}")
            return done(NullMeter(dev, "; ".join(notes)))

    if dev != "cpu":
        return done(NullMeter(dev, f"no energy backend for device {device!r} (supported: cpu, cuda:N)"))

    cpu_kw = {k: options[k] for k in ("tdp_w", "cores", "per_core_w", "rel_uncertainty") if options.get(k) is not None}
    model = resolve_cpu_model(options.get("cpu_model"), **cpu_kw)  # validate settings even if RAPL wins
    if prefer in (None, "rapl"):
        from sprout_core.energy.rapl import DEFAULT_POWERCAP, RaplError, RaplMeter

        try:
            return done(RaplMeter(dev, Path(options.get("powercap_root") or DEFAULT_POWERCAP)))
        except RaplError as exc:
            notes.append(str(exc))
    elif prefer in ("nvml-counter", "nvml-power"):
        notes.append(f"backend {prefer} needs a cuda device, not {device!r}")
    if options.get("allow_estimate", True):
        return done(CpuTdpMeter(dev, model))
    return done(NullMeter(dev, "; ".join(notes) or "no measured source and estimates switched off"))


def _nvml_sum(dev: str, indices: list[int], prefer: str | None, options: dict, notes: list[str]) -> EnergyMeter:
    """One meter over several NVML device indices (each picked as :func:`detect_meter` would), summed.

    If any GPU has no usable source, the whole meter is ``n/a``: a sum over some of the GPUs would
    understate the energy.
    """
    if len(set(indices)) != len(indices):
        raise ValueError(f"NVML indices repeat: {indices}")
    parts = []
    for i in indices:
        opts = {k: v for k, v in options.items() if k not in ("nvml_indices", "nvml_index", "prefer")}
        m = detect_meter(f"cuda:{i}", prefer=prefer, nvml_index=i, **opts)
        notes.extend(f"GPU {i}: {n}" for n in m.notes)
        if not m.available:
            return NullMeter(dev, f"GPU {i} (NVML index) has no usable energy source: {m.describe()}")
        parts.append(m)
    methods = {m.method for m in parts}
    if len(methods) > 1:  # mixed counter/power GPUs: use power on all so one label holds
        return _nvml_sum(dev, indices, "nvml-power", options, notes)
    if len(parts) == 1:
        return parts[0]
    names = ", ".join(sorted({getattr(m, "gpu_name", "GPU") for m in parts}))
    label = f"sum of {len(parts)} GPUs (NVML indices {', '.join(map(str, indices))}; {names}): {parts[0].describe()}"
    return MeterSum(parts, label=label)
