"""The Live page's numbers: the gateway's traffic by hour, read from the store (no streamlit here).

Each gateway request is a row with origin ``gateway`` (``pinned`` = 1 for a pinned level; rows of the first
gateway version say ``gateway:pinned`` instead) and ``hour_utc`` / ``run_id`` = the ISO start of its hour (UTC). :func:`traffic_by_hour` gives per hour: requests per level and pinned, the mix served, the mean
carbon intensity, energy and carbon per request, and — a **counterfactual estimate** — the carbon had every request
of the hour been served at L0: each request priced as the gateway's own mean L0 request (energy J and time s,
over all hours with L0 traffic) at that hour's intensity, PUE and embodied rate. Unknown values stay ``None``
(n/a), never 0.

Units: J, g CO₂e, g/kWh, s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sprout_core import carbon, store

ORIGINS = ("gateway", "gateway:pinned")
EVALUATOR = "gateway-evaluator"
COUNTERFACTUAL = ("counterfactual estimate: every request of the hour served at L0, each priced as the gateway's own "
                  "mean L0 request (energy and time) at that hour's intensity, PUE and embodied rate")


def gateway_requests(db_path=None, since: str | None = None) -> pd.DataFrame:
    """The gateway's rows (newest first), its evaluator's included; ``since``: an ISO date or time (UTC)."""
    return store.query_requests({"origins": [*ORIGINS, EVALUATOR], "since": since}, path=db_path)


@dataclass(frozen=True)
class Traffic:
    """Per-hour table (``hours``), the levels seen, totals and what the counterfactual is (``note``)."""

    hours: pd.DataFrame
    levels: tuple[str, ...]
    requests: int
    carbon_g: float | None
    saved_g: float | None
    note: str
    evaluator_g: float | None = None   #: the evaluator's answers and upstream judgements (charged), g CO₂e
    saved_net_g: float | None = None   #: saved minus the evaluator's carbon


def _mean(s: pd.Series) -> float | None:
    v = pd.to_numeric(s, errors="coerce").dropna()
    return float(v.mean()) if len(v) else None


def traffic_by_hour(df: pd.DataFrame) -> Traffic:
    """The hourly table (see the module docstring) from :func:`gateway_requests`' rows."""
    if df is None or df.empty:
        return Traffic(pd.DataFrame(), (), 0, None, None, COUNTERFACTUAL)
    ev = df[df["origin"] == EVALUATOR]
    evc = pd.to_numeric(ev["carbon_total_g"], errors="coerce")
    evaluator_g = float(evc.sum()) if len(ev) and evc.notna().all() else (0.0 if not len(ev) else None)
    d = df[df["origin"] != EVALUATOR].copy()
    if d.empty:
        return Traffic(pd.DataFrame(), (), 0, None, None, COUNTERFACTUAL, evaluator_g, None)
    hour = d["hour_utc"] if "hour_utc" in d else d["run_id"]
    d["hour"] = hour.fillna(d["run_id"]).fillna(d["ts_utc"].str.slice(0, 13) + ":00:00Z")
    pin = pd.to_numeric(d["pinned"], errors="coerce").fillna(0) if "pinned" in d else 0
    d["_pinned"] = (pin == 1) | (d["origin"] == "gateway:pinned")
    levels = tuple(sorted(d["level"].dropna().unique()))
    l0 = d[d["level"] == "L0"]
    e0 = _mean(l0["energy_j"])
    t0 = _mean(l0["total_s"])
    rows = []
    for hour, g in d.groupby("hour", sort=True):
        n = len(g)
        row: dict = {"hour": hour, "requests": n, "pinned": int(g["_pinned"].sum())}
        for lv in levels:
            k = int((g["level"] == lv).sum())
            row[f"{lv} requests"] = k
            row[f"{lv} share"] = k / n
        ci = _mean(g["ci_g_per_kwh"])
        pue = _mean(g["pue"]) or 1.0
        row["ci_g_per_kwh"] = ci
        row["energy_j_per_request"] = _mean(g["energy_j"])
        row["carbon_g_per_request"] = _mean(g["carbon_total_g"])
        known = pd.to_numeric(g["carbon_total_g"], errors="coerce")
        row["carbon_g"] = float(known.sum()) if known.notna().all() else None
        emb_rate = None
        secs = pd.to_numeric(g["total_s"], errors="coerce")
        emb = pd.to_numeric(g["carbon_embodied_g"], errors="coerce")
        if secs.notna().any() and secs.sum() > 0 and emb.notna().any():
            emb_rate = float(emb.sum() / secs[emb.notna()].sum())
        if e0 is not None and t0 is not None and ci is not None and emb_rate is not None:
            row["counterfactual_l0_g"] = n * carbon.grams_per_request(carbon.kwh(e0), t0, ci, pue, emb_rate)
        else:
            row["counterfactual_l0_g"] = None
        cf, ac = row["counterfactual_l0_g"], row["carbon_g"]
        row["saved_g"] = cf - ac if cf is not None and ac is not None else None
        row["saved_pct"] = 100.0 * (cf - ac) / cf if cf and ac is not None else None
        rows.append(row)
    h = pd.DataFrame(rows)
    tot = h["carbon_g"]
    total = float(tot.sum()) if tot.notna().all() else None
    sv = h["saved_g"]
    saved = float(sv.sum()) if len(sv) and sv.notna().all() else None
    note = COUNTERFACTUAL if e0 is not None else COUNTERFACTUAL + " — n/a: no L0 request with known energy yet"
    net = saved - evaluator_g if saved is not None and evaluator_g is not None else None
    return Traffic(h, levels, int(h["requests"].sum()), total, saved, note, evaluator_g, net)


def mix_chart_data(t: Traffic) -> pd.DataFrame:
    """Long table for the mix-vs-CI chart: hour, level, share; plus CI per hour in :attr:`Traffic.hours`."""
    if t.hours.empty:
        return pd.DataFrame(columns=["hour", "level", "share"])
    rows = [{"hour": r["hour"], "level": lv, "share": r[f"{lv} share"]} for _, r in t.hours.iterrows() for lv in t.levels]
    return pd.DataFrame(rows)


def as_display(t: Traffic) -> pd.DataFrame:
    """The hourly table with readable column names (numbers stay numbers; the page formats them)."""
    if t.hours.empty:
        return t.hours
    cols = {"hour": "hour (UTC)", "requests": "requests", "pinned": "pinned",
            "ci_g_per_kwh": "CI (g/kWh)", "energy_j_per_request": "energy per request (J)",
            "carbon_g_per_request": "carbon per request (g CO₂e)", "saved_g": "saved vs all-L0 (g CO₂e, estimate)",
            "saved_pct": "saved vs all-L0 (%, estimate)"}
    out = t.hours[[c for c in cols if c in t.hours] + [f"{lv} requests" for lv in t.levels]].rename(columns=cols)
    return out.replace({np.nan: None})
