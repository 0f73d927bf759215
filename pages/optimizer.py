"""Optimizer: slide carbon intensity and the quality floor, see the directive mix the Sprout LP serves."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from sprout_core import grid, optimizer, profiles, simulate, ui
from sprout_core.paths import MissingDataError

ui.ensure_navigation()

HANDOFF_KEY = "sprout.q_handoff"

st.title("🎚️ Optimizer")
st.caption("For one hour, the Sprout optimizer picks which share of requests gets each directive level (L0 = no "
           "directive, L1 = 'answer briefly', L2 = 'very briefly') to cut g CO₂eq per request while keeping the "
           "judged quality above a floor. Slide the grid's carbon intensity and the floor and watch the mix change.")


_traces = ui.trace_choices
_reference = ui.reference_profile


def _profile(choice: str, handoff: dict | None, use_handoff: bool):
    try:
        _reference()  # warm the process-wide cache behind a spinner
    except (MissingDataError, profiles.ProfileError):
        pass  # resolve_profile explains what is missing
    return profiles.resolve_profile(choice, handoff, use_handoff)


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

prof, notes = _profile("own" if prof_choice.startswith("own") else "reference", handoff, q_choice != q_options[0])
for n in notes:
    st.info(n)
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

with st.expander("Task mix (the requests' tasks)", expanded=False):
    st.caption("Energy, time and quality differ by task; the optimizer sees them under this mix.")
    cols = st.columns(len(prof.tasks))
    mix = {t: cols[k].slider(t, 0.0, 1.0, 1.0, 0.05, key=f"opt.mix.{t}") for k, t in enumerate(prof.tasks)}
if sum(mix.values()) <= 0:
    st.error("Give at least one task a positive weight.")
    st.stop()
w = prof.weights_from(mix)
e, t, q = prof.under_mix(w)
d = optimizer.decide(e, t, q, ci, prof.k_emb, float(theta), prof.levels)

# ------------------------------------------------------------------ decision
st.subheader("Decision for this hour")
if d.status != "optimal":
    st.error(d.message)
    st.stop()
emb_txt = f"{d.embodied_g:.5f} g" if prof.k_emb_g_per_s is not None else "n/a"
m1, m2, m3, m4 = st.columns(4)
m1.metric("Expected carbon", f"{d.carbon_g:.4f} g CO₂eq/request", help=f"operational {d.operational_g:.5f} g + embodied {emb_txt}; method {prof.method}")
base_g = float(e[0] * ci + prof.k_emb * t[0])
m2.metric("vs always-L0", f"{100 * (1 - d.carbon_g / base_g):.1f} % less" if base_g > 0 else "n/a",
          help=f"always-L0 would cost {base_g:.4f} g/request")
q0_zero = not float(q[0]) > 0
m3.metric("Quality kept", "n/a (q₀ = 0)" if q0_zero else f"{d.quality:.1%}",
          help="Σ qᵢxᵢ / q₀: the judged quality relative to always-L0")
m4.metric("Floor θ", f"{theta:.3f} · q₀", help=f"binding constraint: {d.binding}")
st.caption(f"Numbers: {prof.label} · method `{prof.method}` · q: {prof.q_source} · CI {ci:.1f} g/kWh · embodied {emb_txt} per request")
if q0_zero:
    shares = ", ".join(f"{lv} {v:.1%}" for lv, v in zip(prof.levels, q))
    st.warning(f"In this q, L0 never won (win shares: {shares}). Quality relative to always-L0 is undefined and "
               "every mix meets a floor of θ·q₀ = 0, so the optimizer simply serves the cheapest level. Judge more "
               "prompts (or use another judge) to get a q that trades carbon against quality.")
else:
    st.info(d.message + f" At {ci:.0f} g/kWh a request costs {d.carbon_g:.4f} g CO₂eq on average, "
            f"{'the quality floor binds' if d.binding == 'quality' else 'only Σx = 1 binds'}; "
            f"the best any mix could keep is {d.max_theta:.2f} × q₀.")

b1, b2 = st.columns(2)
bar = go.Figure(go.Bar(x=list(prof.levels), y=d.x * 100, text=[f"{v:.0%}" for v in d.x], textposition="auto",
                       marker_color=["#2e7d32", "#81c784", "#c8e6c9", "#a5d6a7", "#66bb6a"][: len(prof.levels)]))
bar.update_layout(title="Share of requests per level", yaxis_title="share of requests (%)", yaxis_range=[0, 105],
                  height=340, margin=dict(t=40, b=30))
b1.plotly_chart(bar, width="stretch")

cost = e * ci + prof.k_emb * t
if q0_zero:
    b2.caption("No carbon–quality chart: quality relative to always-L0 is undefined when L0 never won.")
else:
    _, cq, cc = optimizer.mix_cloud(cost, q, step=0.05)
    fq, fc = optimizer.frontier(cost, q, n=101)
    fr = go.Figure()
    fr.add_trace(go.Scatter(x=cq * 100, y=cc, mode="markers", name="all mixes (5 % grid)", marker=dict(size=4, color="#bbbbbb")))
    fr.add_trace(go.Scatter(x=fq * 100, y=fc, mode="lines", name="frontier (least carbon for a quality)", line=dict(color="#2e7d32")))
    fr.add_trace(go.Scatter(x=[d.quality * 100], y=[d.carbon_g], mode="markers", name="chosen mix",
                            marker=dict(size=14, color="#d84315", symbol="star")))
    fr.add_vline(x=float(theta) * 100, line_dash="dot", annotation_text="floor θ")
    fr.update_layout(title="Carbon vs quality of every mix", xaxis_title="quality (% of always-L0)",
                     yaxis_title="g CO₂eq per request", height=340, margin=dict(t=40, b=30), legend=dict(orientation="h", y=-0.3))
    b2.plotly_chart(fr, width="stretch")

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
        st.caption(f"Same CI ({ci:.0f} g/kWh), floor θ = {float(theta):.3f} and task mix as above; {basis}. The floor is on "
                   f"the pooled quality, so some tasks may get briefer answers than others. {prof.method}.")

# ------------------------------------------------------------------ window
st.subheader("Over a window of the trace")
st.caption("The hourly decisions of SPROUT over a stretch of the real trace (the task mix drifts about daily; the "
           "offline evaluator refreshes q at carbon-friendly hours, marked ▼).")
w1, w2, w3 = st.columns(3)
start = int(w1.number_input("Start hour", 0, len(trace) - 1, int(hour if hour is not None else 800), key="opt.wstart"))
hours = int(w2.select_slider("Hours", [24, 72, 168, 336, 720], 168, key="opt.whours"))
seed = int(w3.number_input("Seed", 0, 10_000, 0, key="opt.wseed"))
cfg = simulate.SimConfig(start_hour=start, hours=hours, xi=xi if xi is not None else 0.1, seed=seed)
res = simulate.simulate(prof, trace, cfg, ["SPROUT"])
sp = res.results["SPROUT"]
ts = res.timestamps.astype("datetime64[s]").astype(object)
fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.45, 0.55], vertical_spacing=0.06)
fig.add_trace(go.Scatter(x=ts, y=res.ci, name="CI (g/kWh)", line=dict(color="#555")), row=1, col=1)
if len(sp.refresh_hours):
    fig.add_trace(go.Scatter(x=[ts[i] for i in sp.refresh_hours], y=res.ci[sp.refresh_hours], mode="markers",
                             name="evaluator run", marker=dict(symbol="triangle-down", size=10, color="#d84315")), row=1, col=1)
colors = ["#2e7d32", "#81c784", "#c8e6c9", "#a5d6a7", "#66bb6a"]
for i, lv in enumerate(sp.levels):
    fig.add_trace(go.Scatter(x=ts, y=sp.x[:, i] * 100, name=f"share {lv}", stackgroup="x", mode="lines",
                             line=dict(width=0.5, color=colors[i % len(colors)])), row=2, col=1)
fig.update_yaxes(title_text="g CO₂eq/kWh", row=1, col=1)
fig.update_yaxes(title_text="share of requests (%)", range=[0, 100], row=2, col=1)
fig.update_layout(height=480, margin=dict(t=20, b=20), legend=dict(orientation="h", y=-0.12))
st.plotly_chart(fig, width="stretch")
judge = "included" if res.judge_included else "n/a (not included)"
st.caption(("" if xi is not None else "The window replay uses the carbon-aware floor with ξ = 0.1. ") +
           f"Window: SPROUT {sp.carbon_g_per_request:.4f} g CO₂eq/request ({sp.carbon_saving_pct:.1f} % less than always-L0 incl. "
           f"{sp.evaluator_runs} evaluator runs = {sp.evaluator_carbon_g:.1f} g; judge energy {judge}), quality {sp.quality_pct:.1f} % "
           f"· {prof.method} · {grid.ATTRIBUTION}")
