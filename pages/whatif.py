"""What-if: replay real grid traces with Sprout and its baselines, several zones and windows at once."""
import datetime as dt

import plotly.express as px
import streamlit as st

from sprout_core import grid, profiles, simulate, ui
from sprout_core.paths import MissingDataError

ui.ensure_navigation()

HANDOFF_KEY = "sprout.q_handoff"
RESULT_KEY = "whatif.result"
PAPER_ZONES = ["NL", "AU-SA", "GB", "US-TEX-ERCO", "US-CAL-CISO"]

st.title("🌍 What-if")
st.caption("Replay a month (or any window) of a real grid's hourly carbon intensity and compare how much carbon each "
           "strategy saves against always-L0 (BASE), and how much judged quality it keeps.")

with st.expander("What the strategies do"):
    for spec in simulate.STRATEGIES.values():
        st.markdown(f"- **{spec.name}**: {spec.description}")
    st.markdown("Quality = mean over hours of Σ qᵢxᵢ / q₀ with the hour's true win shares (ORACLE can exceed 100 %: it "
                "serves each request its best level where the mix allows). SPROUT's carbon includes its offline "
                "evaluator runs (generating the sampled prompts at every level; judge energy n/a unless set).")


_traces = ui.trace_choices
_reference = ui.reference_profile


ui.grid_upload("wi")  # sidebar: a user's own grid data joins the zone lists below
try:
    tr_list, tr_errors = _traces()
except MissingDataError as exc:
    st.error(str(exc))
    st.stop()
for msg in tr_errors:
    st.warning(f"Skipped a broken trace file: {msg}")
if not tr_list:
    st.error("No usable carbon-intensity trace was found.")
    st.stop()

# ------------------------------------------------------------------ settings
c1, c2, c3 = st.columns([1.3, 1, 1])
years = sorted({y for _, y, _ in tr_list})
year = c1.selectbox("Year", years, index=0, key="wi.year")
zone_names = {z: n for z, y, n in tr_list if y == year}
default = [z for z in PAPER_ZONES if z in zone_names] or sorted(zone_names)[:3]
zones = c1.multiselect("Zones", sorted(zone_names), default=default, key="wi.zones",
                       format_func=lambda z: f"{z} — {zone_names[z]}")
presets = c2.multiselect("Windows", list(simulate.WINDOW_PRESETS), default=list(simulate.WINDOW_PRESETS), key="wi.presets",
                         help="Each preset starts on the 1st of that month (UTC).")
custom = c2.toggle("Add a window from a date", key="wi.custom")
custom_date = c2.date_input("Window start (UTC)", dt.date(year, 8, 1), min_value=dt.date(year, 1, 1),
                            max_value=dt.date(year, 12, 31), key="wi.date", disabled=not custom)
hours = int(c2.select_slider("Window length (hours)", [168, 336, 720, 1440, 2160], 720, key="wi.hours"))
xi = c3.slider("ξ (quality tolerance at the dirtiest hour)", 0.0, 0.5, 0.1, 0.01, key="wi.xi")
seed = int(c3.number_input("Seed", 0, 10_000, 0, key="wi.seed",
                           help="Seeds the task-mix offsets, the sampled prompts and the evaluator's samples."))
prof_choice = c3.radio("Profile", ["reference", "own"], horizontal=True, key="wi.profile",
                       format_func=lambda c: "reference: Llama-2-13B (Sprout paper)" if c == "reference" else "own measurements")
handoff = st.session_state.get(HANDOFF_KEY)
use_handoff = bool(handoff) and c3.toggle(
    f"Use q from Evaluations ({handoff.describe()})" if handoff else "Use q from Evaluations", key="wi.handoff")
with st.expander("Evaluator and volume settings"):
    e1, e2, e3 = st.columns(3)
    n_eval = int(e1.number_input("Prompts per evaluator run", 10, 20_000, 500, 10, key="wi.neval"))
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
    st.info(n)
if prof is None:
    st.error("No profile is available: the reference data is missing and there are no own measurements yet.")
    st.stop()
all_names = simulate.resolve_strategies("all", prof)
strategies = st.multiselect("Strategies", all_names, default=all_names, key=f"wi.strategies.{prof.name}.{len(all_names)}")
from sprout_core.tasks import sim as task_sim  # noqa: E402 - SPROUT-TASK (docs/tasks.md) needs its classifier once

if task_sim.supports(prof) and not task_sim.classifier_ready():
    from sprout_core.tasks import classifier as task_clf
    from sprout_core.tasks import views as task_views

    t1, t2 = st.columns([3, 1])
    t1.info("SPROUT-TASK (one mix per predicted task) is not offered yet: its task classifier is not trained. "
            "Training embeds ~6,600 prompts once (a few minutes on a CPU) and is cached.")
    if t2.button("Train the task classifier", key="wi.task_train", disabled=not task_views.can_train_reference()):
        tbar = st.progress(0.0, text="Embedding prompts for the task classifier…")
        try:
            task_clf.reference_classifier(progress=lambda d, n: tbar.progress(d / n if n else 1.0, text=f"Embedded {d}/{n} prompts"))
            st.rerun()
        except Exception as exc:  # noqa: BLE001 - training must not break the page or lose results
            st.error(f"Could not train the task classifier: {exc}")

windows = [(m, simulate.month_start_hour(year, simulate.WINDOW_PRESETS[m]), hours) for m in presets]
if custom:
    windows.append((custom_date.isoformat(), int((custom_date - dt.date(year, 1, 1)).days * 24), hours))

problems = []
if not zones:
    problems.append("pick at least one zone")
if not windows:
    problems.append("pick at least one window")
if not strategies:
    problems.append("pick at least one strategy")
if problems:
    st.warning("To run: " + "; ".join(problems) + ".")

cfg = simulate.SimConfig(xi=float(xi), seed=seed, n_eval=n_eval, requests_per_hour=float(rph) or None,
                         judge_kwh_per_prompt=(judge_wh / 1000.0) if judge_wh > 0 else None,
                         schedule=simulate.ScheduleParams(force_h=force_h, min_gap_h=gap_h, decay_per_h=float(decay)))
sweep_zone = st.selectbox("ξ sweep for zone", zones or sorted(zone_names), key="wi.sweepzone")

if st.button("Run the replay", type="primary", disabled=bool(problems), key="wi.run"):
    bar = st.progress(0.0, text="Replaying…")
    try:
        traces = [grid.load_trace(z, year) for z in zones]
        df = simulate.run_matrix(prof, traces, windows, cfg, strategies,
                                 progress=lambda d, n, what: bar.progress(d / n * 0.8, text=f"Replayed {what} ({d}/{n})"))
        sw_tr = grid.load_trace(sweep_zone, year)
        first = windows[0]
        sw_cfg = simulate.SimConfig(**{**cfg.__dict__, "start_hour": first[1], "hours": first[2]})
        sweep_names = [n for n in ("SPROUT", "SPROUT-TASK", "ORACLE", "STATIC") if n in all_names]
        sweep = simulate.xi_sweep(prof, sw_tr, sw_cfg, [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], sweep_names,
                                  progress=lambda d, n, what: bar.progress(0.8 + 0.2 * d / n, text=f"ξ sweep: {what}"))
        st.session_state[RESULT_KEY] = {"df": df, "sweep": sweep, "sweep_label": f"{sweep_zone} {first[0]}",
                                        "profile": prof.label, "method": prof.method, "judge": cfg.judge_kwh_per_prompt is not None}
        bar.progress(1.0, text="Done")
    except (MissingDataError, grid.TraceError, profiles.ProfileError, ValueError) as exc:
        bar.empty()
        st.error(f"The replay stopped: {exc}. Earlier results (if any) are kept below.")

# ------------------------------------------------------------------ results
res = st.session_state.get(RESULT_KEY)
if not res:
    st.info("Choose zones, windows and ξ, then press **Run the replay**.")
    st.stop()
df = res["df"]
st.subheader("Results")
st.caption(f"{res['profile']} · method `{res['method']}` · carbon in g CO₂eq per request (incl. evaluator runs) · "
           f"judge energy {'included' if res['judge'] else 'n/a (not included)'} · {grid.ATTRIBUTION}")
show = df.rename(columns={"carbon_g_per_request": "g CO₂eq/request", "carbon_saving_pct": "saving vs BASE (%)",
                          "quality_pct": "quality (%)", "evaluator_carbon_g": "evaluator g CO₂eq"})
st.dataframe(show.drop(columns=["year"]), hide_index=True, width="stretch",
             column_config={"g CO₂eq/request": st.column_config.NumberColumn(format="%.5f"),
                            "saving vs BASE (%)": st.column_config.NumberColumn(format="%.1f"),
                            "quality (%)": st.column_config.NumberColumn(format="%.1f"),
                            "evaluator g CO₂eq": st.column_config.NumberColumn(format="%.1f")})
st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name="sprout_whatif.csv", mime="text/csv", key="wi.csv")

sc = px.scatter(df, x="carbon_saving_pct", y="quality_pct", color="strategy", symbol="window", facet_col="zone",
                facet_col_wrap=3, hover_data=["window", "carbon_g_per_request", "evaluator_runs"],
                labels={"carbon_saving_pct": "carbon saving vs BASE (%)", "quality_pct": "quality (% of always-L0)"},
                title="Quality vs carbon saving (one panel per zone)")
sc.add_hline(y=90, line_dash="dot", line_color="#999")
sc.update_traces(marker=dict(size=11))
sc.update_layout(height=320 * ((df["zone"].nunique() + 2) // 3) + 80)
st.plotly_chart(sc, width="stretch")

sw = res["sweep"]
if len(sw):
    st.subheader(f"ξ sweep — {res['sweep_label']}")
    l1, l2 = st.columns(2)
    l1.plotly_chart(px.line(sw, x="xi", y="carbon_saving_pct", color="strategy", markers=True,
                            labels={"xi": "ξ", "carbon_saving_pct": "carbon saving vs BASE (%)"}), width="stretch")
    l2.plotly_chart(px.line(sw, x="xi", y="quality_pct", color="strategy", markers=True,
                            labels={"xi": "ξ", "quality_pct": "quality (% of always-L0)"}), width="stretch")
