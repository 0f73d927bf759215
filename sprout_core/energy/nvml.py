"""NVIDIA GPUs through NVML (package ``nvidia-ml-py``, module ``pynvml``).

Two backends for one GPU:

* :class:`NvmlCounterMeter` — ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load;
  Volta and newer) — ``measured:nvml-counter``. The counter moves only every ~20–100 ms
  (``counter_period_s``, default 0.1 s): a window shorter than that, or one in which it did not
  move, is completed from power × time and labelled ``measured:nvml-power`` with the flags
  ``short-window`` and ``completed-from-power``.
* :class:`NvmlPowerMeter` — ``nvmlDeviceGetPowerUsage`` (mW) sampled by the background sampler
  and integrated over the window (trapezoid) — ``measured:nvml-power``.

Both measure the whole board: other processes on the same GPU are included (flag ``whole-device``).
NVIDIA states board power readings are accurate to about ±5 W; the readings carry ± 5 W × duration.

The torch device (``cuda:N``) is matched to its NVML handle by UUID, else PCI bus id — never by
index, which differs whenever ``CUDA_VISIBLE_DEVICES`` reorders or hides GPUs.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sprout_core.energy.base import (
    FLAG_WHOLE_DEVICE,
    METHOD_NVML_COUNTER,
    METHOD_NVML_POWER,
    EnergyMeter,
    Sample,
)
from sprout_core.errors import EnergyError

_log = logging.getLogger("sprout.energy.nvml")

NVML_POWER_ACCURACY_W = 5.0


class NvmlError(EnergyError):
    """NVML is absent, fails, or the device cannot be matched; the message says why."""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def normalize_uuid(u: Any) -> str:
    """``"GPU-xxxxxxxx-…"`` lower-cased, from NVML's or torch's form."""
    s = _s(u).strip().lower()
    return s if s.startswith(("gpu-", "mig-")) else f"gpu-{s}"


def normalize_pci(bus_id: Any) -> tuple[int, int, int] | None:
    """``(domain, bus, device)`` from ``"00000000:3B:00.0"`` / ``"0000:3b:00.0"``; ``None`` if unparsable."""
    s = _s(bus_id).strip()
    try:
        dom, bus, rest = s.split(":")
        dev = rest.split(".")[0]
        return int(dom, 16), int(bus, 16), int(dev, 16)
    except ValueError:
        return None


@dataclass(frozen=True)
class CudaIdentity:
    """What torch says about ``cuda:N``: UUID and/or PCI ``(domain, bus, device)``."""

    index: int
    uuid: str | None
    pci: tuple[int, int, int] | None


def torch_cuda_identity(device: str) -> CudaIdentity:
    """UUID and PCI location of a torch CUDA device; raises :class:`NvmlError` if torch has no CUDA."""
    idx = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise NvmlError(f"cannot identify {device}: torch is not installed") from exc
    if not torch.cuda.is_available():
        raise NvmlError(f"cannot identify {device}: this torch build sees no CUDA device")
    props = torch.cuda.get_device_properties(idx)
    uuid = getattr(props, "uuid", None)
    pci = None
    if getattr(props, "pci_bus_id", None) is not None:
        pci = (int(getattr(props, "pci_domain_id", 0)), int(props.pci_bus_id), int(getattr(props, "pci_device_id", 0)))
    return CudaIdentity(idx, normalize_uuid(uuid) if uuid is not None else None, pci)


def load_nvml(module: Any = None) -> Any:
    """Import and initialise ``pynvml`` (or the given fake); raises :class:`NvmlError`."""
    if module is None:
        try:
            import pynvml as module  # type: ignore[no-redef]
        except ImportError as exc:
            raise NvmlError("NVML not available: package nvidia-ml-py (module pynvml) is not installed") from exc
    try:
        module.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded …
        raise NvmlError(f"NVML not available: {exc} (no NVIDIA driver on this machine?)") from exc
    return module


def match_handle(nvml: Any, ident: CudaIdentity) -> tuple[Any, str]:
    """The NVML handle of the GPU torch calls ``cuda:N``, and how it was matched ("uuid …" / "pci …")."""
    count = int(nvml.nvmlDeviceGetCount())
    seen = []
    for i in range(count):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        try:
            u = normalize_uuid(nvml.nvmlDeviceGetUUID(h))
        except Exception as exc:  # noqa: BLE001 - a GPU without a readable UUID is matched by PCI bus or index
            _log.debug("GPU UUID not readable: %s", exc)
            u = None
        try:
            pci = normalize_pci(nvml.nvmlDeviceGetPciInfo(h).busId)
        except Exception as exc:  # noqa: BLE001 - a GPU without a readable PCI bus id is matched by UUID or index
            _log.debug("GPU PCI bus id not readable: %s", exc)
            pci = None
        seen.append((h, u, pci))
    if ident.uuid:
        for h, u, _ in seen:
            if u == ident.uuid:
                return h, f"uuid {u}"
    if ident.pci:
        for h, _, pci in seen:
            if pci == ident.pci:
                return h, "pci {:08X}:{:02X}:{:02X}.0".format(*pci)
    seen = [(u, pci) for _, u, pci in seen]
    raise NvmlError(
        f"cannot match cuda:{ident.index} (uuid={ident.uuid}, pci={ident.pci}) to any of {count} NVML devices "
        f"({seen}); refusing to guess by index"
    )


class _NvmlBase(EnergyMeter):
    base_flags = (FLAG_WHOLE_DEVICE,)
    power_uncertainty_w = NVML_POWER_ACCURACY_W
    power_method = METHOD_NVML_POWER

    def __init__(self, device: str, nvml: Any, handle: Any, matched_by: str) -> None:
        super().__init__(device)
        self.nvml = nvml
        self.handle = handle
        self.matched_by = matched_by
        self._lock = threading.Lock()
        try:
            self.gpu_name = _s(nvml.nvmlDeviceGetName(handle))
        except Exception as exc:  # noqa: BLE001 - the name is only for display
            _log.debug("GPU name not readable: %s", exc)
            self.gpu_name = "NVIDIA GPU"

    def _power_w(self) -> float | None:
        try:
            return float(self.nvml.nvmlDeviceGetPowerUsage(self.handle)) / 1000.0
        except Exception as exc:  # noqa: BLE001 - an unreadable power sample is None (unknown), never 0
            _log.debug("NVML power sample not readable: %s", exc)
            return None


class NvmlCounterMeter(_NvmlBase):
    """Total-energy counter of one GPU (mJ → J), with power readings for live display and short windows."""

    name = "nvml-counter"
    method = METHOD_NVML_COUNTER
    counter_based = True

    def __init__(self, device: str, nvml: Any, handle: Any, matched_by: str, counter_period_s: float = 0.1) -> None:
        super().__init__(device, nvml, handle, matched_by)
        self.counter_period_s = float(counter_period_s)
        self._energy_mj()  # raises if unsupported (pre-Volta): detect_meter falls back to power

    def _energy_mj(self) -> float:
        return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def sample(self) -> Sample:
        with self._lock:
            t = time.perf_counter()
            e = self._energy_mj() / 1000.0
            p = self._power_w()
        return Sample(t, e, p)

    def describe(self) -> str:
        return f"NVML total-energy counter, {self.gpu_name} ({self.device}, matched by {self.matched_by}); whole board"


class NvmlPowerMeter(_NvmlBase):
    """Board power (mW → W) integrated over the window's samples."""

    name = "nvml-power"
    method = METHOD_NVML_POWER
    counter_based = False

    def __init__(self, device: str, nvml: Any, handle: Any, matched_by: str) -> None:
        super().__init__(device, nvml, handle, matched_by)
        if self._power_w() is None:
            raise NvmlError(f"NVML power readings not supported on {self.gpu_name}")

    def sample(self) -> Sample:
        with self._lock:
            t = time.perf_counter()
            p = self._power_w()
        return Sample(t, None, p)

    def describe(self) -> str:
        return f"NVML power readings integrated over time, {self.gpu_name} ({self.device}, matched by {self.matched_by}); whole board"
