"""Generation directives as data, their placement per model, and chat messages.

A *directive* is an instruction attached to a prompt ("Always answer briefly") that makes
a model answer with fewer tokens. Levels are named ``L0`` (no directive), ``L1``, ``L2`` …;
their texts live in ``data/directives/<set>.json``. Where a directive goes depends on the
model (``data/models.json``):

* ``system`` — as the system message, through the tokenizer's chat template (Llama-2-chat,
  exactly as the Sprout paper does; L0 adds no system message at all);
* ``user`` — appended to the user turn (SmolLM2-135M ignores system-message directives).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

from sprout_core.errors import DataFileError, InputError, UnknownNameError
from sprout_core.paths import project_data_dir

Placement = Literal["system", "user"]
PLACEMENTS: tuple[str, ...] = ("system", "user")
_LEVEL_RE = re.compile(r"^L\d{1,2}$")


@dataclass(frozen=True)
class Directive:
    """One directive level.

    Attributes:
        level: level name, ``L0`` … ``L99``.
        text: the instruction; empty for "no directive".
        label: a short human name ("Brief").
        custom: True for levels a user defined in the UI.
    """

    level: str
    text: str
    label: str = ""
    custom: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


@dataclass(frozen=True)
class DirectiveSet:
    """An ordered set of levels, L0 first."""

    name: str
    levels: tuple[Directive, ...]
    description: str = ""
    source: str = ""

    def get(self, level: str) -> Directive:
        for d in self.levels:
            if d.level == level:
                return d
        raise UnknownNameError(f"Unknown directive level {level!r}; this set ({self.name}) has {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [d.level for d in self.levels]

    def select(self, levels: list[str]) -> list[Directive]:
        """The directives for ``levels`` in the order given (UnknownNameError, a KeyError, names an unknown level)."""
        dup = sorted({lv for lv in levels if list(levels).count(lv) > 1})
        if dup:
            raise InputError(f"Level {', '.join(dup)} is asked for more than once")
        return [self.get(lv) for lv in levels]

    def with_level(self, level: str, text: str, label: str = "") -> "DirectiveSet":
        """A copy with a user-defined level added (or replaced when ``level`` exists)."""
        level = level.strip()
        if not _LEVEL_RE.match(level):
            raise InputError(f"A level name looks like L3 (the letter L and a number), not {level!r}")
        if not text.strip():
            raise InputError("A custom level needs a directive text")
        if len(text) > 500:
            raise InputError("A directive text is at most 500 characters")
        try:
            (text + label).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError("The directive text or label is not valid text (an unpaired surrogate); retype it") from None
        new = Directive(level, text.strip(), label.strip() or "Custom", custom=True)
        kept = [d for d in self.levels if d.level != level]
        ordered = sorted(kept + [new], key=lambda d: int(d.level[1:]))
        return replace(self, levels=tuple(ordered))


def directive_sets_dir() -> Path:
    return project_data_dir() / "directives"


def available_directive_sets() -> list[str]:
    """Names of the directive sets shipped in ``data/directives``."""
    return sorted(p.stem for p in directive_sets_dir().glob("*.json"))


@lru_cache(maxsize=None)
def load_directive_set(name: str) -> DirectiveSet:
    """Read ``data/directives/<name>.json``."""
    if not isinstance(name, str) or name not in available_directive_sets():
        raise UnknownNameError(f"No directive set {name!r}; available: {', '.join(available_directive_sets())}")
    path = directive_sets_dir() / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        levels = tuple(Directive(str(d["level"]), str(d.get("text", "")), str(d.get("label", ""))) for d in raw["levels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataFileError(f"{path}: not a directive set ({type(exc).__name__}: {exc})") from None
    if not levels or levels[0].level != "L0" or not levels[0].is_empty:
        raise DataFileError(f"{path}: the first level must be L0 with no directive text")
    return DirectiveSet(raw.get("name", name), levels, raw.get("description", ""), raw.get("source", ""))


@dataclass(frozen=True)
class ModelDirectiveConfig:
    """How directives are applied to one model."""

    placement: Placement
    directive_set: str
    chat_template: str | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def config_for_model(name_or_path: str) -> ModelDirectiveConfig:
    """Placement and directive set for a model, from ``data/models.json`` (first match wins)."""
    raw = json.loads((project_data_dir() / "models.json").read_text(encoding="utf-8"))
    key = name_or_path.lower()
    for entry in raw["models"]:
        if entry["match"].lower() in key:
            return ModelDirectiveConfig(entry["placement"], entry["directive_set"], entry.get("chat_template"), entry.get("note", ""))
    d = raw["default"]
    return ModelDirectiveConfig(d["placement"], d["directive_set"], d.get("chat_template"), d.get("note", ""))


def chat_template_text(name: str) -> str:
    """A chat template shipped in ``data/chat_templates/<name>.jinja``."""
    return (project_data_dir() / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


def build_messages(prompt: str, directive: Directive, placement: Placement) -> list[dict[str, str]]:
    """Chat messages for ``prompt`` under ``directive``.

    ``system``: the directive is the system message (none for an empty directive, so the
    tokenizer's template decides what L0 looks like, as the paper's L0 has no system prompt).
    ``user``: the directive is appended to the user turn after a space.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
    if directive.is_empty:
        return [{"role": "user", "content": prompt}]
    if placement == "system":
        return [{"role": "system", "content": directive.text}, {"role": "user", "content": prompt}]
    return [{"role": "user", "content": f"{prompt.rstrip()} {directive.text}"}]
