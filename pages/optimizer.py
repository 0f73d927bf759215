"""Optimizer: slide carbon intensity and the quality floor, see the directive mix the Sprout LP serves.

Two fragments keep the page responsive (docs/app.md): the decision (CI, floor, confidence, task mix → the
mix, the promise, the per-task view) reruns alone when one of its inputs moves, and the window replay reruns
alone when its own inputs change or when asked to follow new floor settings. A burst of slider changes is
coalesced by Streamlit into one pending fragment rerun with the latest value (fragment reruns do not
interrupt each other), so the decision catches up after at most the run in flight and one more.
"""
import numpy as np
import streamlit as st

from sprout_core import defaults, grid, optimizer, profiles, style, ui
from sprout_core.decision import default_requests_per_hour
from sprout_core.defaults import DEFAULT_YEAR
from sprout_core.paths import MissingDataError
from sprout_core.simulate import DEFAULT_CONFIDENCE
from sprout_core.tasks import views as task_views
from sprout_core.views import optimizer as V

ui.ensure_navigation()

HANDOFF_KEY = "sprout.q_handoff"
WINDOW_XI = 0.1                      # the window's ξ when the floor is a fixed θ
WANTED = "opt.window.wanted"         # (ξ, confidence) the decision's settings ask the window replay for
SHOWN = "opt.window.shown"           # (ξ, confidence) the window on screen was replayed with
DECISION_FRAGMENT, WINDOW_FRAGMENT = "opt-decision", "opt-window"

st.title("Optimizer")
st.caption("For one hour, the Sprout optimizer picks which share of requests gets each directive level (L0 = no "
           "directive, L1 = 'answer briefly', L2 = 'very briefly') to cut g CO₂e per request while keeping the "
           "judged quality above a floor — a promise kept with the confidence you choose. Slide the grid's carbon "
           "intensity, the floor and the confidence, and watch the mix change.")


def _profile(choice: str, handoff, use_handoff: bool, allow_other_model: bool):
    try:
        ui.reference_profile()  # warm the process-wide cache behind a spinner
    except (MissingDataError, profiles.ProfileError):
        pass  # resolve_profile explains what is missing
    return profiles.resolve_profile(choice, handoff, use_handoff, allow_other_model)


def _trace(zone: str, year: int, view: tuple):  # view: grid.sources_signature() (visitors' own traces)
    return grid.load_trace(zone, year)  # cached once, in sprout_core.grid (keyed by the file and its mtime)


@st.cache_data(show_spinner=False)
def _task_confusion(stamp: float, tasks: tuple):
    return task_views.confusion_for(tasks) if stamp else None


# ------------------------------------------------------------------ the decision (its own fragment)

@st.fragment(key=DECISION_FRAGMENT)
def decision_part(prof, trace, zone: str, year: int, pue: float = 1.0) -> None:
    """Everything that follows the CI, floor and confidence controls; reruns alone when one of them moves."""
    f1, f2, f3 = st.columns(3)
    ci_mode = f1.radio("Carbon intensity", ["slider", "an hour of the trace"], horizontal=True, key="opt.cimode")
    ci, hour_msg = None, ""
    if ci_mode == "slider":
        hi = float(np.ceil(max(trace.max() * 1.2, 50.0) / 10) * 10)
        ci = f1.slider("CI (g CO₂eq/kWh)", 0.0, hi, float(round(trace.mean())), step=1.0, format="%.0f",
                       key="opt.ci")
    else:
        # no bounds here: an hour outside the year gets check_hour's message (a bounded box would refuse the
        # value in the browser, stay red and leave the previous hour's decision on screen)
        raw = f1.number_input(f"Hour of {year} (0 … {len(trace) - 1})", value=800, step=1, key="opt.hour",
                              help=f"0 = 1 Jan 00:00 UTC … {len(trace) - 1} = 31 Dec 23:00 UTC")
        hour, hour_msg = V.check_hour(raw, len(trace), year)
        if hour is not None:
            ci = float(trace.ci[hour])
            f1.caption(f"{style.fmt_timestamp(str(trace.timestamps[hour]), seconds=False)} → CI = {ci:.1f} g/kWh")
    f1.caption(f"{ui.plain(zone)} {year:d}: min {trace.min():.0f} · mean {trace.mean():.0f} · max {trace.max():.0f} g/kWh. "
               f"{ui.plain(trace.attribution)}")

    mode = f2.radio("Quality floor", ["carbon-aware ξ", "fixed θ"], horizontal=True, key="opt.mode",
                    help="ξ: no quality may be given up at the cleanest hour of the year, up to ξ·q₀ at the dirtiest. "
                         "θ: always keep Σ qᵢxᵢ ≥ θ·q₀.")
    if mode == "carbon-aware ξ":
        xi = f2.slider("ξ (tolerance at the dirtiest hour)", 0.0, 0.5, 0.1, 0.01, key="opt.xi")
        theta = optimizer.theta_from_xi(ci, trace.min(), trace.max(), xi) if ci is not None else None
    else:
        xi = None
        theta = f2.slider("θ (fraction of always-L0 quality)", 0.5, 1.2, 0.95, 0.01, key="opt.theta")
    confidence = f3.slider("Confidence of the promise", 0.5, 0.99, DEFAULT_CONFIDENCE, 0.01, key="opt.conf",
                           help="The probability that the hour's realised quality meets the floor. The judged q is a "
                                "sample and so are the hour's requests: at 0.5 the optimizer trusts the estimate as it "
                                "is (the paper's LP) and the floor is missed in about half of the hours; higher "
                                "confidence keeps a margin, at some carbon.")
    st.session_state[WANTED] = (float(xi if xi is not None else WINDOW_XI), float(confidence))

    with st.expander("Task mix and requests per hour", expanded=False):
        st.caption("Energy, time and quality differ by task; the optimizer sees them under this mix. The hour's "
                   "number of requests sets how much its realised quality scatters around the estimate.")
        cols = st.columns(len(prof.tasks))
        mix = {t: cols[k].slider(t, 0.0, 1.0, 1.0, 0.05, key=f"opt.mix.{t}") for k, t in enumerate(prof.tasks)}
        rph = st.number_input("Requests per hour", 1, 10_000_000, int(round(default_requests_per_hour(prof))), 100,
                              key="opt.rph")

    st.subheader("Decision for this hour")
    if hour_msg:
        st.error(hour_msg)
    elif sum(mix.values()) <= 0:
        st.error("Give at least one task a positive weight (Task mix and requests per hour).")
    else:
        _decision(prof, float(ci), float(theta), xi, float(confidence), mix, float(rph), pue)
    _window_note()


def _decision(prof, ci: float, theta: float, xi, confidence: float, mix: dict, rph: float, pue: float = 1.0) -> None:
    w = prof.weights_from(mix)
    hv = V.hour_view(prof, ci, theta, w, confidence, rph, pue=pue)
    d = hv.decision
    for n in hv.notes:
        st.warning(n)
    if d.status != "optimal":
        st.error(d.message)
        return
    emb = style.fmt_grams(d.embodied_g) if prof.k_emb_g_per_s is not None else "n/a"
    row = st.container(horizontal=True, gap="small")
    ui.note_metric("Expected carbon", style.fmt_grams(d.carbon_g), "per request", container=row, width=V.METRIC_PX,
                   help=f"operational {style.fmt_grams(d.operational_g)} + embodied {emb}; method {prof.method}")
    ui.note_metric("vs always-L0", f"{hv.saving_pct:.1f} % less" if np.isfinite(hv.saving_pct) else "n/a",
                   f"always-L0: {style.fmt_grams(hv.base_g)}", container=row, width=V.METRIC_PX,
                   help="carbon per request saved against serving every request at L0 (no directive)")
    ui.note_metric("Quality kept", hv.quality_text, hv.promise_note, container=row, width=V.METRIC_PX,
                   help="Σ qᵢxᵢ / q₀: the expected judged quality relative to always-L0")
    ui.note_metric("Floor θ", f"{hv.theta:.3f} · q₀", V.floor_note(hv, xi, ci), container=row, width=V.METRIC_PX,
                   help=f"binding constraint: {d.binding}")
    if hv.promise_text:
        st.caption(f"Promise: {hv.promise_text}.")
    st.caption(f"Numbers: {prof.label} · method `{prof.method}` · q: {prof.q_source} · CI {ci:.1f} g/kWh · PUE {pue:g} · "
               f"embodied {emb} per request")
    (st.warning if hv.q0_zero else st.info)(hv.summary)

    b1, b2 = st.columns(2)
    ui.chart(V.mix_figure(prof.levels, d.x), key="opt.mixchart", filename="sprout-optimizer-mix", container=b1)
    if hv.q0_zero:
        b2.caption("No carbon–quality chart: quality relative to always-L0 is undefined when L0 never won.")
    else:
        ui.chart(V.frontier_figure(prof, w, ci, hv, pue), key="opt.frontier", filename="sprout-optimizer-frontier",
                 container=b2)
    ui.png_hint()
    if len(prof.tasks) > 1:
        _per_task(prof, w, ci, hv.theta, pue)


def _per_task(prof, w, ci: float, theta: float, pue: float = 1.0) -> None:
    """One mix per task next to the pooled mix (docs/tasks.md)."""
    st.subheader("Per task: one mix for each task")
    conf = _task_confusion(task_views.classifier_stamp(), tuple(prof.tasks))
    tv = task_views.per_task_view(prof, w, ci, float(theta), conf, pue=pue)
    cmp_ = tv.comparison
    if cmp_.per_task.status != "optimal":
        st.warning("No per-task mix reaches this floor either: lower θ.")
        return
    row = st.container(horizontal=True, gap="small")
    ui.note_metric("One pooled mix", V.pct_less(cmp_.saving_pooled_pct), style.fmt_grams(cmp_.pooled_g_per_request)
                   + " per request", container=row, width=V.METRIC_PX,
                   help="carbon saved vs always-L0 by one mix for all requests")
    ui.note_metric("One mix per task", V.pct_less(cmp_.saving_per_task_pct),
                   f"{style.fmt_grams(cmp_.per_task.carbon_g_per_request)} per request", container=row,
                   width=V.METRIC_PX, help=f"quality {cmp_.per_task.quality_pct:.1f} % of always-L0")
    ui.note_metric("Extra saving at the same quality", V.pct_less(cmp_.extra_saving_pp, "pp", "+"),
                   "of always-L0's carbon", container=row, width=V.METRIC_PX + 60,   # its label is longer
                   help="percentage points of always-L0's carbon, both at the floor θ·q₀")
    ui.chart(task_views.per_task_figure(tv), key="opt.pertask", filename="sprout-optimizer-per-task")
    basis = ("mixes act on the **predicted** task (held-out confusion matrix of the task classifier), cost and "
             "quality follow the true task" if tv.confusion_used else
             "task labels assumed known (no trained task classifier yet: see the Playground or "
             "`python -m sprout_core classify --report`)")
    st.caption(f"Same CI ({ci:.0f} g/kWh), floor θ = {float(theta):.3f} and task mix as above, both mixes at the "
               f"plug-in estimate (confidence 0.5); {basis}. The floor is on the pooled quality, so some tasks may "
               f"get briefer answers than others. {prof.method}.")


def _window_note() -> None:
    """Under the decision: say when the window below was replayed at other floor settings, with a button."""
    wanted, shown = st.session_state.get(WANTED), st.session_state.get(SHOWN)
    if shown is None or wanted is None or tuple(wanted) == tuple(shown):
        return
    n1, n2 = st.columns([2, 1], vertical_alignment="center")
    n1.info(f"The window below was replayed at ξ = {shown[0]:.2f} and {shown[1]:.0%} confidence; the settings above "
            f"are now ξ = {wanted[0]:.2f} and {wanted[1]:.0%}. A replay takes longer than a decision, so it follows "
            "only when you ask.")
    n2.button("Replay the window", key="opt.window.follow", on_click=_follow_window,
              help="Replay the window below at the floor settings above")


def _follow_window() -> None:
    st.session_state[SHOWN] = st.session_state.get(WANTED)
    st.rerun([WINDOW_FRAGMENT, DECISION_FRAGMENT])


# ------------------------------------------------------------------ the window replay (its own fragment)

@st.fragment(key=WINDOW_FRAGMENT)
def window_part(prof, trace, year: int, pue: float = 1.0) -> None:
    """SPROUT over a window of the trace at the floor settings above; reruns alone (its inputs, or the button)."""
    st.subheader("Over a window of the trace")
    st.caption("The hourly decisions of SPROUT over a stretch of the real trace (the task mix drifts about daily; the "
               "offline evaluator refreshes q at carbon-friendly hours, marked ▼), and each hour's realised quality "
               "against its floor.")
    w1, w2, w3 = st.columns(3)
    raw = w1.number_input("Start hour", value=800, step=24, key="opt.wstart",
                          help=f"Hour of {year}: 0 = 1 Jan 00:00 UTC … {len(trace) - 1} = 31 Dec 23:00 UTC.")
    hours = int(w2.select_slider("Hours", [24, 72, 168, 336, 720], 168, key="opt.whours"))
    seed = int(w3.number_input("Seed", 0, 10_000, 0, key="opt.wseed"))
    start, msg = V.check_hour(raw, len(trace), year)
    if msg:
        st.error(msg.replace("No decision is shown for it.", "No window is replayed from it."))
        return
    xi, confidence = st.session_state.get(WANTED) or (WINDOW_XI, DEFAULT_CONFIDENCE)
    st.session_state[SHOWN] = (xi, confidence)
    if start + hours > len(trace):
        st.info(f"The window is cut to {len(trace) - start:d} hours: {year:d} ends at hour {len(trace) - 1:d}.")
    with st.spinner("Replaying the window…"):
        wv = V.window_view(prof, trace, start, hours, xi, seed, confidence, pue)
    ui.chart(wv.figure, key="opt.window.chart", filename="sprout-optimizer-window")
    fixed = "" if st.session_state.get("opt.mode", "carbon-aware ξ") == "carbon-aware ξ" else \
        f"The window replay uses the carbon-aware floor with ξ = {WINDOW_XI}. "
    st.caption(fixed + wv.caption + f" · {grid.ATTRIBUTION}")


# ------------------------------------------------------------------ page: profile, q source, zone (full reruns)

ui.grid_upload("opt")  # sidebar: a user's own grid data joins the zone lists below
pue = ui.pue_setting()  # sidebar: the one app-wide PUE (Playground, Optimizer and What-if alike)
try:
    tr_list, tr_errors = ui.trace_choices()
except MissingDataError as exc:
    st.error(ui.error_text(exc))
    st.stop()
if not tr_list:
    st.error("No usable carbon-intensity trace was found. " + ui.error_text(" ".join(tr_errors)))
    st.stop()
for msg in tr_errors:
    st.warning(f"Skipped a broken trace file: {ui.error_text(msg)}")

c1, c2 = st.columns([1, 1])
prof_choice = c1.radio("Profile", ["reference: Llama-2-13B-chat on A100 (Sprout paper)", "own: this project's measurements"],
                       key="opt.profile", help="Per-level energy, time and quality (win share) the optimizer works with.")
handoff = st.session_state.get(HANDOFF_KEY)
q_options = ["the profile's own q"]
if handoff:
    q_options.append(f"from Evaluations: {handoff.describe()}")
q_choice = c1.radio("Quality (q) source", q_options, index=len(q_options) - 1, key="opt.qsrc",
                    help="q_i = share of judged prompts whose best answer came from level i. The Evaluations page can "
                         "send its latest result here.")
use_handoff = q_choice != q_options[0]
mismatch = False
if handoff and use_handoff:
    base_model = (profiles.REFERENCE_MODEL if not prof_choice.startswith("own") else None)
    mismatch = base_model is not None and not profiles.same_model(handoff.model, base_model)
allow_other = c1.checkbox("Combine with this profile anyway (different models)", key="opt.allow_other",
                          help="The q was judged on another model's answers than this profile's energy. Combining them "
                               "mixes two models; the result says so.") if mismatch else False
prof, notes = _profile("own" if prof_choice.startswith("own") else "reference", handoff, use_handoff, allow_other)
for n in notes:
    (st.warning if n.startswith(("Not using", "Warning")) else st.info)(n)
if prof is None:
    st.error("No profile is available: the reference data is missing and there are no own measurements yet.")
    st.stop()

zones_years = sorted({(z, y) for z, y, _ in tr_list})
years = sorted({y for _, y in zones_years})
year = c2.selectbox("Year", years, index=years.index(DEFAULT_YEAR) if DEFAULT_YEAR in years else 0, key="opt.year")
zone_names = {z: n for z, y, n in tr_list if y == year}
zones = sorted(zone_names)
default_zone = zones.index(defaults.default_zone()) if defaults.default_zone() in zones else 0
zone = c2.selectbox("Grid zone", zones, index=default_zone, key="opt.zone", format_func=lambda z: f"{z} — {zone_names[z]}")
try:
    trace = _trace(zone, year, grid.sources_signature())
except (MissingDataError, grid.TraceError) as exc:
    st.error(ui.error_text(exc))
    st.stop()

st.session_state.pop(SHOWN, None)   # a full run replays the window too: no "replayed at other settings" note
decision_part(prof, trace, zone, year, pue)
window_part(prof, trace, year, pue)
