"""What-if: replay real grid traces with Sprout and its baselines, several zones and windows at once."""
import datetime as dt

import streamlit as st

from sprout_core import grid, profiles, simulate, ui
from sprout_core.defaults import DEFAULT_YEAR
from sprout_core.errors import SproutError
from sprout_core.paths import MissingDataError
from sprout_core.tasks import sim as task_sim
from sprout_core.tasks import views as task_views
from sprout_core.views import whatif as V

ui.ensure_navigation()

HANDOFF_KEY = "sprout.q_handoff"
RESULT_KEY = "whatif.result"
PAPER_ZONES = list(simulate.PAPER_ZONES)
PAPER_PRESET = "Paper (h 800, 3900, 7000)"

st.title("What-if")
st.caption("Replay a month (or any window) of a real grid's hourly carbon intensity and compare how much carbon each "
           "strategy saves against always-L0 (BASE), and how much judged quality it keeps.")

with st.expander("What the strategies do"):
    for spec in simulate.STRATEGIES.values():
        st.markdown(f"- **{spec.name}**: {spec.description}")
    st.markdown("Quality = the hour's realised win share relative to always-L0 on the same requests (the share of "
                "requests served at the level the judge preferred ÷ the share L0 wins). **The promise**: SPROUT keeps "
                "each hour's floor θ with the chosen confidence; the table reports the share of hours that actually met "
                "it, the 5th-percentile hour and the worst hour. SPROUT's carbon includes its offline evaluator runs "
                "(generating the sampled prompts at every level; judge energy n/a unless set). **Paper-faithful mode** "
                "replays with the authors' simulator semantics (docs/optimizer.md lists every difference).")


_traces = ui.trace_choices
_reference = ui.reference_profile


def _columns(table, pin: str | None = None) -> dict:
    """Column configs: short labels, the unit on every number, the full name as help (views.whatif.column_specs)."""
    cfg = {c: st.column_config.NumberColumn(**spec) for c, spec in V.column_specs(table).items()}
    if pin in table.columns:
        cfg[pin] = st.column_config.TextColumn(pin, pinned=True)
    return cfg


ui.grid_upload("wi")  # sidebar: a user's own grid data joins the zone lists below
pue = ui.pue_setting()  # sidebar: the one app-wide PUE (Playground, Optimizer and What-if alike)
try:
    tr_list, tr_errors = _traces()
except MissingDataError as exc:
    st.error(ui.error_text(exc))
    st.stop()
for msg in tr_errors:
    st.warning(f"Skipped a broken trace file: {ui.error_text(msg)}")
if not tr_list:
    st.error("No usable carbon-intensity trace was found.")
    st.stop()

# ------------------------------------------------------------------ settings
c1, c2 = st.columns(2)
years = sorted({y for _, y, _ in tr_list})
year = c1.selectbox("Year", years, index=years.index(DEFAULT_YEAR) if DEFAULT_YEAR in years else 0, key="wi.year")
zone_names = {z: n for z, y, n in tr_list if y == year}
default = [z for z in PAPER_ZONES if z in zone_names] or sorted(zone_names)[:3]
# chips show the zone id only (a chip cuts "US-TEX-ERCO — Electri…" at any width); the names follow in a caption
zones = c1.multiselect("Zones", sorted(zone_names), default=default, key="wi.zones",
                       format_func=lambda z: z + (" · your data" if zone_names[z].endswith("your data") else ""))
if zones:
    c1.caption(ui.plain("; ".join(f"{z}: {zone_names[z]}" for z in zones)) + ".")
presets = c1.multiselect("Windows", list(simulate.WINDOW_PRESETS) + [PAPER_PRESET], default=list(simulate.WINDOW_PRESETS),
                         key="wi.presets", help="Each month preset starts on the 1st of that month (UTC); the paper preset "
                                                "is the Sprout paper's three 720-h windows (hours 800, 3900, 7000).")
custom = c1.toggle("Add a window from a date", key="wi.custom")
custom_date = c1.date_input("Window start (UTC)", dt.date(year, 8, 1), min_value=dt.date(year, 1, 1),
                            max_value=dt.date(year, 12, 31), key="wi.date", disabled=not custom)
hours = int(c1.select_slider("Window length (hours)", [168, 336, 720, 1440, 2160], 720, key="wi.hours"))
xi = c2.slider("ξ (quality tolerance at the dirtiest hour)", 0.0, 0.5, 0.1, 0.01, key="wi.xi")
paper_mode = c2.toggle("Paper-faithful mode", key="wi.paper",
                       help="The Sprout authors' simulator: their task-mix draws (seed 0 = the mixes behind the paper's "
                            "figures), evaluator rule, 1,000 prompts per run, the plug-in LP, no evaluator carbon, plain "
                            "hourly means, their STATIC and ORACLE.")
confidence = c2.slider("Confidence of the quality promise", 0.5, 0.99, simulate.DEFAULT_CONFIDENCE, 0.01,
                       key="wi.conf", disabled=paper_mode,
                       help="The probability with which SPROUT keeps each hour's floor (0.5 = trust the estimate as it "
                            "is: the paper's LP). Paper mode uses 0.5.")
s1_, s2_ = c2.columns(2)
seed = int(s1_.number_input("Seed", 0, 10_000, 0, key="wi.seed",
                            help="Seeds the task-mix offsets, the sampled prompts and the evaluator's samples."))
n_seeds = int(s2_.number_input("Seeds to average", 1, 10, 1, key="wi.nseeds",
                               help="Replays every window with seeds seed, seed+1, …; the paper comparison uses 0–2."))
prof_choice = c2.radio("Profile", ["reference", "own"], horizontal=True, key="wi.profile",
                       format_func=lambda c: "reference: Llama-2-13B (Sprout paper)" if c == "reference" else "own measurements")
handoff = st.session_state.get(HANDOFF_KEY)
use_handoff = bool(handoff) and c2.toggle(
    f"Use q from Evaluations ({handoff.describe()})" if handoff else "Use q from Evaluations", key="wi.handoff")
with st.expander("Evaluator and volume settings"):
    e1, e2, e3 = st.columns(3)
    n_eval = int(e1.number_input("Prompts per evaluator run", 10, 20_000, 500, 10, key="wi.neval"))
    per_task_floor = e2.toggle("Per-task floor", value=True, key="wi.pertask", disabled=paper_mode,
                               help="On (default): every task keeps θ of its own always-L0 quality, and every task-hour "
                                    "counts in 'hours meeting the floor'. Off: one floor on the hour's pooled quality — "
                                    "a strategy may then give up a whole task (paper mode's floor).")
    held_out = e3.toggle("Held-out stress", value=False, key="wi.stress", disabled=paper_mode,
                         help="The evaluator judges one half of each task's judged prompts and the users send the other "
                              "half (partition from seed // 2; seed % 2 swaps the halves): does the promise hold on "
                              "prompts it never saw?")
    memory = int(e1.number_input("Pool the evaluator's verdicts of the last (h)", 0, 2_000, 168, 24, key="wi.memory",
                                 help="0 = each run replaces q (the paper); the default pools a week of runs per task."))
    rph = e2.number_input("Requests per hour (0 = from the task-mix trace)", 0, 10_000_000, 0, 100, key="wi.rph")
    judge_wh = e3.number_input("Judge energy per prompt, Wh (0 = unknown: not included)", 0.0, 100.0, 0.0, 0.01, key="wi.judge")
    s1, s2, s3 = st.columns(3)
    force_h = int(s1.number_input("Force a refresh after (h)", 1, 1000, 72, key="wi.force"))
    gap_h = int(s2.number_input("Never within (h) of the last", 0, 200, 6, key="wi.gap"))
    decay = s3.number_input("Decay per hour", 0.0, 1.0, 0.029, 0.001, format="%.3f", key="wi.decay")

try:
    _reference()
except (MissingDataError, profiles.ProfileError):
    pass
prof, notes = profiles.resolve_profile(prof_choice, handoff, use_handoff)
for n in notes:
    (st.warning if n.startswith(("Not using", "Warning")) else st.info)(n)
if prof is None:
    st.error("No profile is available: the reference data is missing and there are no own measurements yet.")
    st.stop()
all_names = simulate.resolve_strategies("all", prof)
strategies = st.multiselect("Strategies", all_names, default=all_names, key=f"wi.strategies.{prof.name}.{len(all_names)}")
if task_sim.supports(prof) and not task_sim.classifier_ready():
    t1, t2 = st.columns([2, 1])
    if task_views.can_train_reference():
        t1.info("SPROUT-TASK (one mix per predicted task) is not offered yet: its task classifier is not trained. "
                "Training embeds ~6,600 prompts once (a few minutes on a CPU) and is cached.")
    else:
        t1.info("SPROUT-TASK (one mix per predicted task) is not offered: its task classifier is trained on the "
                "reference prompt texts, which are not shipped (non-commercial licences). Add them as the README's "
                "'Public data' section explains to train it.")
    ui.train_task_classifier("wi.task_train", container=t2)

windows = [(m, simulate.month_start_hour(year, simulate.WINDOW_PRESETS[m]), hours) for m in presets if m != PAPER_PRESET]
if PAPER_PRESET in presets:
    windows += [(f"h{h}", h, 720) for h in simulate.PAPER_STARTS]
if custom:
    windows.append((custom_date.isoformat(), int((custom_date - dt.date(year, 1, 1)).days * 24), hours))

n_year = 8784 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 8760
cut = [(lab, st_, n_year - st_) for lab, st_, h in windows if st_ + h > n_year]
if cut:
    st.info("Cut to the end of the year: " + "; ".join(f"window {lab} keeps {h:d} hours" for lab, _, h in cut) + ".")
    windows = [(lab, st_, min(h, n_year - st_)) for lab, st_, h in windows]

problems = []
if not zones:
    problems.append("pick at least one zone")
if not windows:
    problems.append("pick at least one window")
if not strategies:
    problems.append("pick at least one strategy")
if problems:
    st.warning("To run: " + "; ".join(problems) + ".")

sched = simulate.ScheduleParams(force_h=force_h, min_gap_h=gap_h, decay_per_h=float(decay))
common = dict(xi=float(xi), seed=seed, requests_per_hour=float(rph) or None,
              judge_kwh_per_prompt=(judge_wh / 1000.0) if judge_wh > 0 else None)
try:
    if paper_mode:
        cfg = simulate.SimConfig.paper_faithful(**common)
    else:
        cfg = simulate.SimConfig(confidence=float(confidence), n_eval=n_eval, evaluator_memory_h=memory, schedule=sched,
                                 per_task_floor=bool(per_task_floor), stress="held-out" if held_out else "none",
                                 pue=pue, **common)
except SproutError as exc:
    st.error(ui.error_text(exc))
    st.stop()
if paper_mode:
    st.info("Paper-faithful mode: the authors' semantics (evaluator settings above and the PUE do not apply: PUE 1) "
            "on the authors' own "
            "task mixes, the draw behind the paper's figures; the seeds vary the sampled prompts. Pick the paper "
            "windows and US-TEX-ERCO, US-CAL-CISO, AU-SA, NL and GB in 2023 to see the paper's published means next "
            "to this replay.")
sweep_zone = st.selectbox("ξ and confidence sweeps for zone", zones or sorted(zone_names), key="wi.sweepzone")
seeds = list(range(seed, seed + n_seeds))

if st.button("Run the replay", type="primary", disabled=bool(problems), key="wi.run"):
    bar = st.progress(0.0, text="Replaying…")
    try:
        traces = [grid.load_trace(z, year) for z in zones]
        attributions = sorted({tr.attribution for tr in traces})
        df = simulate.run_matrix(prof, traces, windows, cfg, strategies, seeds=seeds,
                                 progress=lambda d, n, what: bar.progress(d / n * 0.7, text=f"Replayed {what} ({d}/{n})"))
        sw_tr = grid.load_trace(sweep_zone, year)
        first = windows[0]
        sw_cfg = cfg.with_(start_hour=first[1], hours=min(first[2], len(sw_tr) - first[1]))
        sweep_names = [n for n in ("SPROUT", "SPROUT-TASK", "ORACLE", "STATIC") if n in all_names]
        sweep = simulate.xi_sweep(prof, sw_tr, sw_cfg, [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], sweep_names,
                                  progress=lambda d, n, what: bar.progress(0.7 + 0.15 * d / n, text=f"ξ sweep: {what}"))
        conf_sweep = None
        if not paper_mode:
            conf_sweep = simulate.confidence_sweep(
                prof, sw_tr, sw_cfg, [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
                progress=lambda d, n, what: bar.progress(0.85 + 0.15 * d / n, text=f"confidence sweep: {what}"))
        st.session_state[RESULT_KEY] = {"df": df, "sweep": sweep, "conf_sweep": conf_sweep,
                                        "sweep_label": f"{sweep_zone} {first[0]}", "profile": prof.label,
                                        "method": prof.method, "judge": cfg.judge_kwh_per_prompt is not None,
                                        "paper": paper_mode, "confidence": cfg.confidence,
                                        "per_task_floor": cfg.per_task_floor,
                                        "attribution": " · ".join(attributions)}
        bar.progress(1.0, text="Done")
    except SproutError as exc:
        bar.empty()
        st.error(f"The replay stopped: {ui.error_text(exc)} Earlier results (if any) are kept below.")

# ------------------------------------------------------------------ results
res = st.session_state.get(RESULT_KEY)
if not res:
    st.info("Choose zones, windows, ξ and the confidence, then press **Run the replay**.")
    st.stop()
df = res["df"]
st.subheader("Results")
mode_txt = "paper-faithful mode" if res["paper"] else f"quality promise at {res['confidence']:.0%} confidence"
st.caption(f"{res['profile']} · method `{res['method']}` · {mode_txt} · carbon in g CO₂e per request "
           f"(incl. evaluator runs{' — not charged in paper mode' if res['paper'] else ''}) · judge energy "
           f"{'included' if res['judge'] else 'n/a (not included)'} · {res.get('attribution', grid.ATTRIBUTION)}")
summ = V.strategy_summary(df, tasks=False)
st.markdown(f"**Per strategy** (mean over {int(summ['replays'].max())} replays — zone-windows × seeds; the worst hour "
            "over all of them; hover a column's name for its full meaning)")
st.dataframe(summ, hide_index=True, width="stretch", placeholder="n/a", column_config=_columns(summ, pin="strategy"),
             column_order=[c for c in summ.columns if c != "replays"])
if not res["paper"]:
    st.caption(V.promise_note(res["confidence"], bool(res.get("per_task_floor", True))))
per_task = V.task_quality(df)
if per_task is not None:
    st.markdown("**Quality per task** (each task's realised quality as a share of that task's own always-L0 "
                "quality — a pooled figure can hide a task that loses much)")
    st.dataframe(per_task, hide_index=True, width="stretch", placeholder="n/a", column_config=_columns(per_task, pin="strategy"))
    st.caption(f"'{V.BELOW_COL}': a task whose mean is below the lowest floor of any hour (100 % − ξ). "
               + V.ABOVE_100_NOTE)
cmp_ = V.paper_comparison(df)
if cmp_ is not None and res["paper"]:
    st.markdown("**Next to the Sprout paper's published means** (ξ = 0.1, each window averaged over its seeds)")
    st.dataframe(cmp_, hide_index=True, width="stretch", placeholder="n/a", column_config=_columns(cmp_, pin="strategy"))
    st.caption("Paper mode replays the authors' own task mixes (their seed 0, shared by all 15 windows); the seeds "
               "vary the sampled prompts. Given the authors' own evaluator samples (recovered from their result "
               "files), paper mode makes every one of their 10,800 hourly decisions and arrives at their published "
               "SPROUT saving; what differs here is the draw of the samples, which moves SPROUT's 15-window mean with a "
               "standard deviation of about 1.2 pp, and one window by up to 10 pp (docs/optimizer.md).")
elif cmp_ is not None:
    st.caption("These are the paper's windows: switch on **Paper-faithful mode** to see this replay next to the "
               "paper's published figures (the default mode keeps a quality promise the paper's LP does not, so its "
               "savings are not comparable).")
with st.expander("Every replay", expanded=False):
    every = V.readable(df)
    st.dataframe(every, hide_index=True, width="stretch", placeholder="n/a", column_config=_columns(every, pin="strategy"))
st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name="sprout_whatif.csv", mime="text/csv", key="wi.csv")

ui.chart(V.quality_saving_figure(df), key="wi.scatter", filename="sprout-whatif-quality-vs-saving")
ui.png_hint()

if res.get("conf_sweep") is not None and len(res["conf_sweep"]):
    ui.chart(V.confidence_figure(res["conf_sweep"], res["sweep_label"]), key="wi.confidence",
             filename="sprout-whatif-confidence")
    st.caption("Each point replays SPROUT at that confidence: the share of hours meeting the floor should sit on the "
               "dashed 'promised' line; the saving is what keeping the promise costs.")
sw = res["sweep"]
if len(sw):
    st.subheader(f"ξ sweep — {res['sweep_label']}")
    fa, fb = V.xi_figures(sw)
    l1, l2 = st.columns(2)
    ui.chart(fa, key="wi.xi.saving", filename="sprout-whatif-xi-saving", container=l1)
    ui.chart(fb, key="wi.xi.quality", filename="sprout-whatif-xi-quality", container=l2)
