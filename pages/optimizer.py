"""Optimizer: slide carbon intensity and the quality floor, see the directive mix the Sprout LP serves."""
import numpy as np
import streamlit as st

from sprout_core import grid, optimizer, profiles, ui
from sprout_core.decision import default_requests_per_hour
from sprout_core.paths import MissingDataError
from sprout_core.simulate import DEFAULT_CONFIDENCE
from sprout_core.views import optimizer as V

ui.ensure_navigation()

HANDOFF_KEY = "sprout.q_handoff"

st.title("🎚️ Optimizer")
st.caption("For one hour, the Sprout optimizer picks which share of requests gets each directive level (L0 = no "
           "directive, L1 = 'answer briefly', L2 = 'very briefly') to cut g CO₂eq per request while keeping the "
           "judged quality above a floor — a promise kept with the confidence you choose. Slide the grid's carbon "
           "intensity, the floor and the confidence, and watch the mix change.")


_traces = ui.trace_choices
_reference = ui.reference_profile


def _profile(choice: str, handoff, use_handoff: bool, allow_other_model: bool):
    try:
        _reference()  # warm the process-wide cache behind a spinner
    except (MissingDataError, profiles.ProfileError):
        pass  # resolve_profile explains what is missing
    return profiles.resolve_profile(choice, handoff, use_handoff, allow_other_model)


@st.cache_resource(show_spinner=False)
def _trace(zone: str, year: int):
    return grid.load_trace(zone, year)


ui.grid_upload("opt")  # sidebar: a user's own grid data joins the zone lists below
try:
    tr_list, tr_errors = _traces()
except MissingDataError as exc:
    st.error(str(exc))
    st.stop()
if not tr_list:
    st.error("No usable carbon-intensity trace was found. " + " ".join(tr_errors))
    st.stop()
for msg in tr_errors:
    st.warning(f"Skipped a broken trace file: {msg}")

# ------------------------------------------------------------------ profile and q source
c1, c2, c3 = st.columns([1.2, 1, 1])
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

# ------------------------------------------------------------------ zone, CI, floor
zones_years = sorted({(z, y) for z, y, _ in tr_list})
years = sorted({y for _, y in zones_years})
year = c2.selectbox("Year", years, index=0, key="opt.year")
zone_names = {z: n for z, y, n in tr_list if y == year}
zones = sorted(zone_names)
default_zone = zones.index("US-TEX-ERCO") if "US-TEX-ERCO" in zones else 0
zone = c2.selectbox("Grid zone", zones, index=default_zone, key="opt.zone", format_func=lambda z: f"{z} — {zone_names[z]}")
try:
    trace = _trace(zone, year)
except (MissingDataError, grid.TraceError) as exc:
    st.error(str(exc))
    st.stop()

ci_mode = c3.radio("Carbon intensity", ["slider", "an hour of the trace"], horizontal=True, key="opt.cimode")
if ci_mode == "slider":
    hi = float(np.ceil(max(trace.max() * 1.2, 50.0) / 10) * 10)
    ci = c3.slider("CI (g CO₂eq/kWh)", 0.0, hi, float(round(trace.mean())), step=1.0, key="opt.ci")
    hour = None
else:
    hour = int(c3.number_input(f"Hour of {year} (0 = 1 Jan 00:00 UTC)", 0, len(trace) - 1, 800, key="opt.hour"))
    ci = float(trace.ci[hour])
    c3.caption(f"{str(trace.timestamps[hour]).replace('T', ' ')[:16]} UTC → CI = {ci:.1f} g/kWh")
c3.caption(f"{zone} {year}: min {trace.min():.0f} · mean {trace.mean():.0f} · max {trace.max():.0f} g/kWh. {trace.attribution}")

mode = c2.radio("Quality floor", ["carbon-aware ξ", "fixed θ"], horizontal=True, key="opt.mode",
                help="ξ: no quality may be given up at the cleanest hour of the year, up to ξ·q₀ at the dirtiest. "
                     "θ: always keep Σ qᵢxᵢ ≥ θ·q₀.")
if mode == "carbon-aware ξ":
    xi = c2.slider("ξ (tolerance at the dirtiest hour)", 0.0, 0.5, 0.1, 0.01, key="opt.xi")
    theta = optimizer.theta_from_xi(ci, trace.min(), trace.max(), xi)
else:
    xi = None
    theta = c2.slider("θ (fraction of always-L0 quality)", 0.5, 1.2, 0.95, 0.01, key="opt.theta")
confidence = c2.slider("Confidence of the promise", 0.5, 0.99, DEFAULT_CONFIDENCE, 0.01, key="opt.conf",
                       help="The probability that the hour's realised quality meets the floor. The judged q is a sample "
                            "and so are the hour's requests: at 0.5 the optimizer trusts the estimate as it is (the "
                            "paper's LP) and the floor is missed in about half of the hours; higher confidence keeps a "
                            "margin, at some carbon.")

with st.expander("Task mix and requests per hour", expanded=False):
    st.caption("Energy, time and quality differ by task; the optimizer sees them under this mix. The hour's number of "
               "requests sets how much its realised quality scatters around the estimate.")
    cols = st.columns(len(prof.tasks))
    mix = {t: cols[k].slider(t, 0.0, 1.0, 1.0, 0.05, key=f"opt.mix.{t}") for k, t in enumerate(prof.tasks)}
    rph = st.number_input("Requests per hour", 1, 10_000_000, int(round(default_requests_per_hour(prof))), 100,
                          key="opt.rph")
if sum(mix.values()) <= 0:
    st.error("Give at least one task a positive weight.")
    st.stop()
w = prof.weights_from(mix)
e, t, q = prof.under_mix(w)
hv = V.hour_view(prof, ci, float(theta), w, float(confidence), float(rph))
d = hv.decision

# ------------------------------------------------------------------ decision
st.subheader("Decision for this hour")
for n in hv.notes:
    st.warning(n)
if d.status != "optimal":
    st.error(d.message)
    st.stop()
emb_txt = f"{d.embodied_g:.5f} g" if prof.k_emb_g_per_s is not None else "n/a"
m1, m2, m3, m4 = st.columns(4)
m1.metric("Expected carbon", f"{d.carbon_g:.4f} g CO₂e/request", help=f"operational {d.operational_g:.5f} g + embodied {emb_txt}; method {prof.method}")
m2.metric("vs always-L0", f"{hv.saving_pct:.1f} % less" if np.isfinite(hv.saving_pct) else "n/a",
          help=f"always-L0 would cost {hv.base_g:.4f} g/request")
m3.metric("Quality kept", hv.quality_text, help="Σ qᵢxᵢ / q₀: the expected judged quality relative to always-L0")
m4.metric("Floor θ", f"{hv.theta:.3f} · q₀", help=f"binding constraint: {d.binding}")
if hv.promise_text:
    st.caption(f"Promise: {hv.promise_text}.")
st.caption(f"Numbers: {prof.label} · method `{prof.method}` · q: {prof.q_source} · CI {ci:.1f} g/kWh · embodied {emb_txt} per request")
(st.warning if hv.q0_zero else st.info)(hv.summary)

b1, b2 = st.columns(2)
b1.plotly_chart(V.mix_figure(prof.levels, d.x), width="stretch")
if hv.q0_zero:
    b2.caption("No carbon–quality chart: quality relative to always-L0 is undefined when L0 never won.")
else:
    b2.plotly_chart(V.frontier_figure(prof, w, ci, hv), width="stretch")
theta = hv.theta

# ------------------------------------------------------------------ per task (docs/tasks.md)
if len(prof.tasks) > 1:
    from sprout_core.tasks import views as task_views

    @st.cache_data(show_spinner=False)
    def _task_confusion(stamp: float, tasks: tuple):
        return task_views.confusion_for(tasks) if stamp else None

    st.subheader("Per task: one mix for each task")
    conf = _task_confusion(task_views.classifier_stamp(), tuple(prof.tasks))
    tv = task_views.per_task_view(prof, w, ci, float(theta), conf)
    cmp_ = tv.comparison
    if cmp_.per_task.status != "optimal":
        st.warning("No per-task mix reaches this floor either: lower θ.")
    else:
        p1, p2, p3 = st.columns(3)
        def _pct(v: float, unit: str = "% less", sign: str = "") -> str:
            return f"{round(v, 1) + 0.0:{sign}.1f} {unit}" if np.isfinite(v) else "n/a"

        p1.metric("One pooled mix", _pct(cmp_.saving_pooled_pct), help=f"{cmp_.pooled_g_per_request:.4f} g CO₂eq/request")
        p2.metric("One mix per task", _pct(cmp_.saving_per_task_pct),
                  help=f"{cmp_.per_task.carbon_g_per_request:.4f} g CO₂eq/request, quality {cmp_.per_task.quality_pct:.1f} % of always-L0")
        p3.metric("Extra saving at the same quality", _pct(cmp_.extra_saving_pp, "pp", "+"),
                  help="percentage points of always-L0's carbon, both at the floor θ·q₀")
        st.plotly_chart(task_views.per_task_figure(tv), width="stretch", key="opt.pertask")
        basis = ("mixes act on the **predicted** task (held-out confusion matrix of the task classifier), cost and "
                 "quality follow the true task" if tv.confusion_used else
                 "task labels assumed known (no trained task classifier yet: see the Playground or "
                 "`python -m sprout_core classify --report`)")
        st.caption(f"Same CI ({ci:.0f} g/kWh), floor θ = {float(theta):.3f} and task mix as above, both mixes at the "
                   f"plug-in estimate (confidence 0.5); {basis}. The floor is on "
                   f"the pooled quality, so some tasks may get briefer answers than others. {prof.method}.")

# ------------------------------------------------------------------ window
st.subheader("Over a window of the trace")
st.caption("The hourly decisions of SPROUT over a stretch of the real trace (the task mix drifts about daily; the "
           "offline evaluator refreshes q at carbon-friendly hours, marked ▼), and each hour's realised quality "
           "against its floor.")
w1, w2, w3 = st.columns(3)
start = int(w1.number_input("Start hour", 0, len(trace) - 1, int(hour if hour is not None else 800), key="opt.wstart"))
hours = int(w2.select_slider("Hours", [24, 72, 168, 336, 720], 168, key="opt.whours"))
seed = int(w3.number_input("Seed", 0, 10_000, 0, key="opt.wseed"))
if start + hours > len(trace):
    st.info(f"The window is cut to {len(trace) - start} hours: {year} ends at hour {len(trace) - 1}.")
wv = V.window_view(prof, trace, start, hours, xi if xi is not None else 0.1, seed, float(confidence))
st.plotly_chart(wv.figure, width="stretch")
st.caption(("" if xi is not None else "The window replay uses the carbon-aware floor with ξ = 0.1. ") + wv.caption +
           f" · {grid.ATTRIBUTION}")
