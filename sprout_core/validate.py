"""Checks on values people give, run *before* any expensive work (model load, generation, simulation).

Every check raises :class:`~sprout_core.errors.InputError` (or :class:`~sprout_core.errors.UnknownNameError`)
with a message that names the value, says what is wrong and what is accepted. The CLI uses the
``arg_*`` factories as argparse ``type=`` functions, so a bad flag is reported by argparse (usage line,
exit status 2) before anything runs; the pages call the plain functions.

No NaN or infinity passes a numeric check; no text with an unpaired UTF-16 surrogate (what a
non-UTF-8 file or terminal leaves in a Python string) passes a text check.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Sequence

from sprout_core.errors import InputError, UnknownNameError

#: torch threads a person may ask for (``--threads``); more is a typo, not a machine
MAX_THREADS = 1024
#: the PUE range Sprout accepts (1 = no overhead; 3 is beyond the worst data centres on record)
PUE_RANGE = (1.0, 3.0)
#: decoding cap per answer (tokens)
MAX_NEW_TOKENS = 8192


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def number(name: str, value, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           unit: str = "") -> float:
    """``value`` as a finite float within ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
    u = f" {unit}" if unit else ""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number{f' ({unit})' if unit else ''}, not {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be a finite number{f' ({unit})' if unit else ''}, not {value!r}")
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise InputError(f"{name} must be {'above' if lo_open else 'at least'} {_fmt(lo)}{u}, not {x:g}{u}"
                         + _range(lo, hi, u, lo_open))
    if hi is not None and x > hi:
        raise InputError(f"{name} must be at most {_fmt(hi)}{u}, not {x:g}{u}" + _range(lo, hi, u, lo_open))
    return x


def _range(lo, hi, u, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" (accepted: {'above ' if lo_open else ''}{_fmt(lo)} to {_fmt(hi)}{u})"
    return ""


def whole(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int within ``[lo, hi]`` (a float with a fraction, NaN, or text is refused)."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, int):
        n = value
    else:
        try:
            x = float(str(value).strip())
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a whole number, not {value!r}") from None
        if not math.isfinite(x) or x != int(x):
            raise InputError(f"{name} must be a whole number, not {value!r}")
        n = int(x)
    if lo is not None and n < lo:
        raise InputError(f"{name} must be at least {lo:,}, not {n:,}" + _range(lo, hi, ""))
    if hi is not None and n > hi:
        raise InputError(f"{name} must be at most {hi:,}, not {n:,}" + _range(lo, hi, ""))
    return n


def text(name: str, value: str, *, max_chars: int | None = None, allow_empty: bool = False) -> str:
    """``value`` if it is real text: no unpaired surrogates, not empty (unless allowed), not too long."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise InputError(
            f"{name} is not valid text: character {exc.start + 1:,} is {ascii(bad)}, an unpaired UTF-16 surrogate "
            "(what bytes that are not UTF-8 turn into). Save or paste it as UTF-8 and try again.") from None
    if not allow_empty and not value.strip():
        raise InputError(f"{name} is empty: type some text first.")
    if max_chars is not None and len(value) > max_chars:
        raise InputError(f"{name} has {len(value):,} characters; the limit is {max_chars:,}. "
                         f"Shorten it by {len(value) - max_chars:,} characters.")
    return value


def decode(name: str, data: bytes) -> str:
    """UTF-8 bytes (a BOM is dropped) as text; the message names the first bad byte's offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text: byte {exc.start + 1:,} (0x{data[exc.start]:02x}) cannot be "
                         "decoded. Save it as UTF-8 and try again.") from None


def choice(name: str, value: str, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options`` (exact), else :class:`UnknownNameError` listing them."""
    opts = list(options)
    if value not in opts:
        raise UnknownNameError(f"unknown {name} {value!r}; choose one of {', '.join(opts)}")
    return value


def name_list(name: str, raw: str, options: Sequence[str] | None = None) -> list[str]:
    """A comma-separated list (``L0,L1``): trimmed, no empty list, no duplicates, each in ``options``."""
    items = [x.strip() for x in (raw or "").split(",")]
    items = [x for x in items if x]
    if not items:
        raise InputError(f"{name} is empty; give a comma-separated list" +
                         (f" of {', '.join(options)}" if options else ""))
    dup = sorted({x for x in items if items.count(x) > 1})
    if dup:
        raise InputError(f"{name} names {', '.join(dup)} more than once")
    if options is not None:
        bad = [x for x in items if x not in options]
        if bad:
            raise UnknownNameError(f"unknown {name} {', '.join(map(repr, bad))}; choose from {', '.join(options)}")
    return items


# ---------------------------------------------------------------- argparse types

def _arg(check: Callable, *a, **kw) -> Callable[[str], object]:
    def parse(raw: str):
        try:
            return check("the value", raw, *a, **kw)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("the value ", "", 1)) from None

    parse.__name__ = check.__name__  # argparse names the type in some messages
    return parse


def arg_number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, unit: str = ""):
    """argparse ``type=``: a finite float in range."""
    return _arg(number, lo, hi, lo_open=lo_open, unit=unit)


def arg_whole(lo: int | None = None, hi: int | None = None):
    """argparse ``type=``: an int in range."""
    return _arg(whole, lo, hi)


def arg_text(max_chars: int | None = None, allow_empty: bool = False):
    """argparse ``type=``: valid text (no unpaired surrogates)."""
    return _arg(text, max_chars=max_chars, allow_empty=allow_empty)
