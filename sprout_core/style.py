"""Sprout's visual language: one colour per directive level, human-readable units and magnitudes.

Pure functions (no streamlit, no plotly import at module level), used by every page, chart and
view module so that "L2" has the same colour everywhere and a number reads the same everywhere:

* :func:`level_color` / :func:`level_color_map` — L0 dark green … L2 light green, L3+ amber/brown;
* :func:`fmt_energy` (J, kJ, Wh, kWh), :func:`fmt_grams` (µg, mg, g, kg, t CO₂e), :func:`fmt_power`,
  :func:`fmt_seconds`, :func:`fmt_number` — three significant digits, never ``1.6e+02``;
* :func:`energy_scale` / :func:`grams_scale` — one unit for a whole chart axis or table column
  (so an axis reads "mg CO₂e" with plain numbers instead of Plotly's "600µ");
* :func:`fmt_timestamp` — an ISO-8601 UTC stamp as "29 Nov 2026, 14:03:07 UTC";
* :func:`fmt_quantity` — **the one formatter** for a number with a unit (g / g CO₂e, J, W, s, %, g/kWh,
  anything else verbatim), :func:`fmt_count` for counts with the right plural ("1 token", "2 tokens"),
  :func:`fmt_pct`, :func:`fmt_na` ("n/a (why)") and :func:`fmt_cell` / :func:`display_cells` for table cells.

Unknown values are ``None`` (or NaN) and print as ``"n/a"`` — with the reason where it is known — never 0,
``None`` or ``nan``. A small positive number never prints as "0": the unit is chosen so that it shows
(874 µg, not 0 g), and significant figures (not fixed decimals) keep it visible.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Iterable, Sequence

#: colour of level ``L<i>`` (index i); darker = more tokens, lighter = briefer directives
LEVEL_PALETTE = ("#1b5e20", "#43a047", "#9ccc65", "#fbc02d", "#ef6c00", "#8d6e63", "#5c6bc0", "#00897b")
#: colours of the two parts of a carbon account
OPERATIONAL_COLOR = "#37474f"
EMBODIED_COLOR = "#b0bec5"
#: neutral colours for series that are not levels (a grid trace, a baseline)
GRID_COLOR = "#546e7a"
BASELINE_COLOR = "#9e9e9e"
HIGHLIGHT_COLOR = "#d84315"

_LEVEL_RE = re.compile(r"^L(\d+)$")

#: one colour per replay strategy (What-if, lesson); SPROUT in the L1 green, the baseline grey
STRATEGY_COLORS = {"BASE": BASELINE_COLOR, "CO2-OPT": "#c62828", "STATIC": "#1565c0", "SPROUT": LEVEL_PALETTE[1],
                   "SPROUT-TASK": "#00897b", "ORACLE": "#6a1b9a", "MODEL-OPT": "#8d6e63"}
_EXTRA_COLORS = ("#ef6c00", "#5c6bc0", "#ad1457", "#558b2f", "#00838f")
#: marker symbols for a second category (e.g. What-if windows), in order
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "star", "x", "hexagon")


def level_color(level: str, position: int | None = None) -> str:
    """The colour of a directive level: ``L<i>`` → palette[i]; another name → by ``position`` (or a hash)."""
    m = _LEVEL_RE.match(str(level).strip())
    if m:
        i = int(m.group(1))
    elif position is not None:
        i = int(position)
    else:
        i = sum(map(ord, str(level)))
    return LEVEL_PALETTE[i % len(LEVEL_PALETTE)]


def strategy_color(name: str) -> str:
    """The colour of a replay strategy (a fixed one for the known strategies, a stable one otherwise)."""
    return STRATEGY_COLORS.get(str(name)) or _EXTRA_COLORS[sum(map(ord, str(name))) % len(_EXTRA_COLORS)]


def level_color_map(levels: Iterable[str]) -> dict[str, str]:
    """``{level: colour}`` for a Plotly ``color_discrete_map``."""
    return {str(lv): level_color(str(lv), k) for k, lv in enumerate(levels)}


def level_colors(levels: Sequence[str]) -> list[str]:
    """The colours of ``levels`` in order (for ``marker_color`` of one bar trace)."""
    return [level_color(str(lv), k) for k, lv in enumerate(levels)]


# ------------------------------------------------------------------------------------- numbers

def fmt_number(v: float | None, sig: int = 3) -> str:
    """``v`` with ``sig`` significant digits in plain notation, thousands separated, no trailing zeros:
    0.00123, 12.3, 15, 1,230."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    v = float(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    places = sig - 1 - mag  # negative: round the integer part too (156 → 160 at 2 digits)
    decimals = max(0, places)
    out = f"{round(v, places):,.{decimals}f}"
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return "0" if float(out.replace(",", "")) == 0 else out


#: (divisor in J, unit) from small to large
_ENERGY_UNITS = ((1e-3, "mJ"), (1.0, "J"), (1e3, "kJ"), (3600.0, "Wh"), (3.6e6, "kWh"), (3.6e9, "MWh"))
#: (divisor in g, unit)
_GRAM_UNITS = ((1e-6, "µg"), (1e-3, "mg"), (1.0, "g"), (1e3, "kg"), (1e6, "t"))


def energy_scale(values: Iterable[float | None] | float | None) -> tuple[float, str]:
    """``(divisor, unit)`` for energies in J: mJ below 1 J, J below 1 kJ, kJ below 10 Wh, then Wh / kWh / MWh."""
    m = _max_abs(values)
    if m is None or m == 0:
        return 1.0, "J"
    if m < 1:
        return 1e-3, "mJ"
    if m < 1e3:
        return 1.0, "J"
    if m < 3.6e4:
        return 1e3, "kJ"
    if m < 3.6e6:
        return 3600.0, "Wh"
    if m < 3.6e9:
        return 3.6e6, "kWh"
    return 3.6e9, "MWh"


def grams_scale(values: Iterable[float | None] | float | None) -> tuple[float, str]:
    """``(divisor, unit)`` for masses in g: µg, mg, g, kg or t, the largest unit the biggest value is ≥ 1 of."""
    m = _max_abs(values)
    if m is None or m == 0:
        return 1.0, "g"
    for div, unit in reversed(_GRAM_UNITS):
        if m >= div:
            return div, unit
    return _GRAM_UNITS[0]


def _max_abs(values) -> float | None:
    if values is None:
        return None
    if isinstance(values, (int, float)):
        values = [values]
    finite = [abs(float(v)) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return max(finite) if finite else None


def fmt_energy(energy_j: float | None, method: str | None = None, uncertainty_j: float | None = None) -> str:
    """``"12.3 J"``, ``"4.56 kJ ± 0.5 kJ"``, ``"1.2 Wh (measured:rapl)"``; ``"n/a"`` when unknown (never 0)."""
    if energy_j is None or (isinstance(energy_j, float) and math.isnan(energy_j)):
        return "n/a" + (f" ({method})" if method and method != "n/a" else "")
    div, unit = energy_scale(energy_j)
    unc = f" ± {fmt_number(uncertainty_j / div, 2)} {unit}" if uncertainty_j is not None else ""
    return f"{fmt_number(energy_j / div)} {unit}{unc}" + (f" ({method})" if method else "")


def fmt_grams(g: float | None, co2e: bool = True, sig: int = 3) -> str:
    """A mass of CO₂e in the unit that reads best: ``"2.61 mg CO₂e"``, ``"1.2 kg CO₂e"``; ``"n/a"`` when unknown.
    Only an exact zero prints as ``"0 g"``; anything smaller than 1 µg still shows its digits in µg."""
    if is_unknown(g):
        return "n/a"
    suffix = " CO₂e" if co2e else ""
    if g == 0:
        return f"0 g{suffix}"
    div, unit = grams_scale(g)
    return f"{fmt_number(g / div, sig)} {unit}{suffix}"


def fmt_power(w: float | None) -> str:
    """``"4.2 W"``, ``"310 W"``, ``"1.2 kW"``; ``"n/a"`` when unknown."""
    if w is None or (isinstance(w, float) and math.isnan(w)):
        return "n/a"
    if abs(w) >= 1000:
        return f"{fmt_number(w / 1000)} kW"
    return f"{fmt_number(w, 2 if abs(w) < 10 else 3)} W"


def fmt_seconds(s: float | None) -> str:
    """``"0.42 s"``, ``"12.3 s"``, ``"2 min 05 s"``, ``"1 h 02 min"``; ``"n/a"`` when unknown."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "n/a"
    if s < 60:
        return f"{fmt_number(s, 2 if s < 10 else 3)} s"
    if s < 3600:
        m, sec = divmod(int(round(s)), 60)
        return f"{m} min {sec:02d} s"
    h, rest = divmod(int(round(s)), 3600)
    return f"{h} h {rest // 60:02d} min"


def fmt_intensity(ci: float | None) -> str:
    """Carbon intensity: ``"274 g CO₂e/kWh"``; ``"n/a"`` when unknown."""
    return "n/a" if is_unknown(ci) else f"{fmt_number(ci)} g CO₂e/kWh"


# ------------------------------------------------------------------------ chart titles

#: top margin (px) of a chart whose title has a second line (:func:`chart_title`)
TITLE_MARGIN_PX = 78


def chart_title(main: str, sub: str | None = None) -> dict:
    """A Plotly ``title`` that fits a half-width chart at 1000 px: a short ``main`` line and the units or the
    basis as a smaller second line (``sub``). Plotly never wraps a title, so a long one-line title runs out of
    the chart; give the layout ``margin.t`` ≥ :data:`TITLE_MARGIN_PX` when ``sub`` is set."""
    text = main if not sub else f"{main}<br><span style='font-size:0.78em'>{sub}</span>"
    return {"text": text, "x": 0, "xanchor": "left", "font": {"size": 15}}


# ------------------------------------------------------------------------ what an energy label counts

#: the help text of each energy-method label (docs/energy.md, "What each energy number counts"), shown wherever
#: the label is: what the number covers and what it leaves out
METHOD_HELP = {
    "measured:nvml-counter": "Measured by the GPU's own energy counter (NVML): the whole GPU board, other processes "
                             "on it included; ± 5 W × the answer's seconds.",
    "measured:nvml-power": "Measured from the GPU board's power (NVML), sampled and integrated: the whole board; "
                           "± 5 W × the answer's seconds.",
    "measured:rapl": "Measured by the CPU's energy counters (RAPL): whole CPU sockets and their DRAM, other processes "
                     "included.",
    "estimated:cpu-tdp": "Estimated, not measured: this process's CPU time × watts per busy core (the CPU preset's "
                         "TDP ÷ cores), ± 50 %. It counts no RAM, no idle share of the machine and no other "
                         "process — CodeCarbon on the same answers reported 2.6× as much, three quarters of it a "
                         "fixed RAM power (docs/energy.md).",
    "reference:sprout-paper": "Reference: the Sprout paper's published GPU measurements (Llama-2-13B on an A100), "
                              "not measured here.",
}


def method_help(method: str | None) -> str:
    """What the energy behind ``method`` counts (:data:`METHOD_HELP`; the family's text for e.g.
    ``estimated:cpu-tdp`` of a server); ``n/a`` labels say the energy is unknown, never 0."""
    m = str(method or "n/a")
    if m in METHOD_HELP:
        return METHOD_HELP[m]
    for key, text in METHOD_HELP.items():
        if m.startswith(key):
            return text
    if m.startswith("n/a"):
        return "Energy unknown here (no readable meter, or a server on another machine): shown as n/a, never 0."
    return f"Energy label {m}: see docs/energy.md."


# ------------------------------------------------------------------------ the one formatter

def is_unknown(v) -> bool:
    """``True`` for a value that stands for "unknown": ``None``, NaN (float, numpy or pandas' NA/NaT), an empty
    string or the text ``"None"``/``"nan"`` (a value that went through ``str`` somewhere)."""
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip().lower() in ("", "none", "nan", "n/a", "<na>", "nat")
    try:
        return bool(v != v)  # NaN and pandas' NA/NaT are not equal to themselves
    except (TypeError, ValueError):  # pd.NA raises on bool(); arrays are not one value
        return v.__class__.__name__ in ("NAType", "NaTType")


def fmt_na(why: str | None = None) -> str:
    """``"n/a"``, or ``"n/a (why)"`` when the reason is known: ``fmt_na("no L0 answer")`` → ``"n/a (no L0 answer)"``."""
    return f"n/a ({why})" if why else "n/a"


def fmt_count(n: int | float | None, noun: str, plural: str | None = None, why: str | None = None) -> str:
    """A count with the right plural: ``"1 token"``, ``"2 tokens"``, ``"0 tokens"``, ``"1,234 answers"``;
    ``plural`` for irregular nouns (``fmt_count(2, "query", "queries")``); ``"n/a"`` (with ``why``) when unknown."""
    if is_unknown(n):
        return fmt_na(why)
    n = float(n)
    whole = n == int(n)
    text = f"{int(n):,}" if whole else fmt_number(n)
    word = noun if (whole and abs(int(n)) == 1) else (plural or _plural(noun))
    return f"{text} {word}"


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def fmt_pct(v: float | None, sig: int = 3, why: str | None = None, signed: bool = False) -> str:
    """A percentage already in % units: ``"12.3 %"``, ``"0.42 %"``, ``"100 %"`` (``signed``: ``"+2.8 %"``);
    at most one decimal above 10 %, significant figures below (so 0.04 % never reads "0 %")."""
    if is_unknown(v):
        return fmt_na(why)
    v = float(v)
    text = fmt_number(v, sig) if abs(v) < 10 else fmt_number(round(v, 1), max(sig, len(str(int(abs(v))))))
    return ("+" if signed and v > 0 else "") + f"{text} %"


#: unit spellings fmt_quantity scales itself (value in the base unit on the left)
_MASS_UNITS = {"g": False, "g CO₂e": True, "g CO2e": True, "g co2e": True}
_ENERGY_INPUT = {"J": 1.0, "kJ": 1e3, "Wh": 3600.0, "kWh": 3.6e6}


def fmt_quantity(value: float | None, unit: str, sig: int = 3, why: str | None = None) -> str:
    """The one formatter for a number with a unit, so a number reads the same on every page and in the CLI.

    ``value`` is in ``unit``; masses and energies are shown in the unit that reads best (µg / mg / g / kg / t
    CO₂e; mJ / J / kJ / Wh / kWh), seconds as ``fmt_seconds``, watts as ``fmt_power``, ``"%"`` as
    :func:`fmt_pct`, ``"g/kWh"`` as an intensity, and any other unit verbatim after ``sig`` significant
    digits (``fmt_quantity(1031.9252, "tokens/s")`` → ``"1,030 tokens/s"``). Never e-notation, never a raw
    float, never "0" for a small positive number; ``None``/NaN → ``"n/a"`` or ``"n/a (why)"``.
    """
    if is_unknown(value):
        return fmt_na(why)
    v = float(value)
    if math.isinf(v):
        return fmt_na(why or "infinite")
    if unit in _MASS_UNITS:
        return fmt_grams(v, co2e=_MASS_UNITS[unit], sig=sig)
    if unit in _ENERGY_INPUT:
        j = v * _ENERGY_INPUT[unit]
        div, u = energy_scale(j)
        return f"{fmt_number(j / div, sig)} {u}"
    if unit == "s":
        return fmt_seconds(v)
    if unit == "W":
        return fmt_power(v)
    if unit == "%":
        return fmt_pct(v, sig)
    if unit in ("g/kWh", "g CO₂e/kWh"):
        return f"{fmt_number(v, sig)} g CO₂e/kWh"
    return f"{fmt_number(v, sig)} {unit}".rstrip()


def fmt_cell(v, sig: int = 3, na: str = "n/a") -> str:
    """One table cell as text: a whole number with thousands separators, a float at ``sig`` significant digits,
    text as it is, and ``na`` for ``None``/NaN/"None" — for tables shown as text (no "None", no "1031.9252")."""
    if is_unknown(v):
        return na
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (hasattr(v, "is_integer") and not isinstance(v, float) and float(v).is_integer()):
        return f"{int(v):,}"
    if isinstance(v, float) or hasattr(v, "dtype"):
        return fmt_number(float(v), sig)
    return str(v)


def display_cells(df, sig: int = 3, na: str = "n/a", keep: Sequence[str] = ()):
    """A copy of the DataFrame ``df`` with every cell as text by :func:`fmt_cell` (columns in ``keep`` untouched)."""
    out = df.copy()
    for c in out.columns:
        if c not in keep:
            out[c] = [fmt_cell(v, sig, na) for v in out[c]]
    return out


def parse_timestamp(ts: str | None) -> datetime | None:
    """An ISO-8601 stamp as an aware UTC datetime (naive stamps are taken as UTC); ``None`` when unreadable."""
    if not ts:
        return None
    try:
        d = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return None
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)


def fmt_timestamp(ts: str | datetime | None, seconds: bool = True) -> str:
    """``"29 Nov 2026, 14:03:07 UTC"``; ``"n/a"`` when missing or unreadable."""
    d = ts if isinstance(ts, datetime) else parse_timestamp(ts)
    if d is None:
        return "n/a"
    return d.strftime("%-d %b %Y, %H:%M" + (":%S" if seconds else "")) + " UTC"
