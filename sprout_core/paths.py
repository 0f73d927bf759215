"""Where Sprout finds its files.

Three places, each overridable by an environment variable:

* project data (``data/``, committed): directive sets, the starter prompts, shipped results, and the
  shipped compact public data (``data/carbon``, ``data/reference``: see :data:`SHIPPED_FILES`);
* public data (``SPROUT_DATA_DIR``, default ``data/external``, git-ignored): the files of
  ``../shared/data`` linked or copied there by ``scripts/setup.sh`` — never committed; needed only
  for the optional texts (prompts, responses) and to rebuild the shipped files;
* state (``SPROUT_STATE_DIR``, default ``.sprout/``, git-ignored): the SQLite database,
  derived caches (trained classifiers, …) and the grid traces a user added (``grid/``);
* model cache (``SPROUT_CACHE_DIR``, default ``~/.cache/sprout``): safetensors copies of
  models converted from GGUF.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sprout_core.errors import MissingDataError, StoreError
from sprout_core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Public data sets Sprout can use, relative to the public data directory, with what they are for.
PUBLIC_DATASETS: dict[str, str] = {
    "carbon": "hourly grid carbon intensity (Electricity Maps exports, ODbL)",
    "llama2-13b-a100": "Sprout paper measurements of Llama-2-13B-chat on an A100 (reference profile)",
    "prompts": "public prompt sets: MT-Bench, Vicuna-bench, GSM8K test, AlpacaEval",
}

#: Compact copies of public data sets shipped in ``data/`` (built by ``scripts/build_data.py``).
SHIPPED_FILES: dict[str, str] = {
    "carbon": "carbon/electricitymaps_hourly.npz",
    "llama2-13b-a100": "reference/llama2-13b-a100.npz",
}
#: What the shipped copy holds (the rest of the public data set is optional).
SHIPPED_PURPOSE: dict[str, str] = {
    "carbon": "every zone-year of hourly carbon intensity ships with Sprout (data/carbon, ODbL 1.0)",
    "llama2-13b-a100": "the paper's numbers ship with Sprout (data/reference, MIT): energy, time, verdicts, "
                       "task mix; the prompt and answer texts are optional",
}


def project_data_dir() -> Path:
    """The committed ``data/`` folder of the project."""
    return REPO_ROOT / "data"


def public_data_dir() -> Path:
    """The public data directory (``SPROUT_DATA_DIR`` or ``data/external``); may not exist."""
    return Settings.from_env().data_dir or REPO_ROOT / "data" / "external"


def shipped_file(dataset: str) -> Path:
    """The committed compact copy of a public data set (``carbon`` or ``llama2-13b-a100``); may be absent."""
    return project_data_dir() / SHIPPED_FILES[dataset]


def state_dir(create: bool = True) -> Path:
    """Folder for runtime state (database, derived caches); created on demand."""
    path = Settings.from_env().state_dir or REPO_ROOT / ".sprout"
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create Sprout's state folder {path} ({exc.strerror or exc}); set "
                             "SPROUT_STATE_DIR to a writable folder.") from None
    return path


def user_grid_dir(create: bool = True) -> Path:
    """Grid traces a user added (``<state>/grid``; ``python -m sprout_core grid add`` or the upload box)."""
    path = state_dir(create=create) / "grid"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(create: bool = True) -> Path:
    """Folder for model caches (``SPROUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/sprout`` or ``~/.cache/sprout``)."""
    path = Settings.from_env().cache_dir or Path.home() / ".cache" / "sprout"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class DatasetStatus:
    """Whether one public data set is present (in the public folder, or as the shipped compact copy)."""

    name: str
    path: Path
    present: bool
    purpose: str


def public_data_status() -> list[DatasetStatus]:
    """Which public data sets are present, for the UI's "what is missing" notes.

    A data set absent from the public folder but shipped in ``data/`` counts as present; its purpose
    then says what the shipped copy holds.
    """
    base = public_data_dir()
    out = []
    for name, purpose in PUBLIC_DATASETS.items():
        p = base / name
        present = p.is_dir() and any(p.iterdir())
        if not present and name in SHIPPED_FILES and shipped_file(name).exists():
            out.append(DatasetStatus(name, shipped_file(name), True, f"{purpose} — {SHIPPED_PURPOSE[name]}"))
            continue
        out.append(DatasetStatus(name, p, present, purpose))
    return out


def public_file(*parts: str) -> Path:
    """Path of a public data file, or :class:`MissingDataError` naming what is missing."""
    p = public_data_dir().joinpath(*parts)
    if not p.exists():
        raise MissingDataError(
            f"Missing public data file: {p}. Run `bash scripts/setup.sh` next to a ../shared/data "
            "folder, or download the public files as the README ('Public data') describes."
        )
    return p


def installed_package_dir(name: str) -> Path | None:
    """Folder of an installed data-carrying package, found with ``importlib.util.find_spec`` (never imported),
    or ``None`` when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])
