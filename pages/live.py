"""Live: the gateway's traffic by hour (python -m sprout_core gateway), refreshing while the page is open."""
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from sprout_core import store, style, ui
from sprout_core.views import live as V

ui.ensure_navigation()
st.title("Live")
st.caption("What the carbon-aware gateway (`python -m sprout_core gateway`, docs/serving.md) served, hour by hour: "
           "requests per level, energy and carbon per request, the mix it chose against the grid's carbon "
           "intensity, and the carbon saved against serving everything at L0. Read from the History database; "
           "refreshes every 10 s while this page is open.")


@st.fragment(run_every=10)
def traffic() -> None:
    try:
        t = V.traffic_by_hour(V.gateway_requests())
    except store.StoreError as exc:
        ui.show_error(exc)
        return
    if t.requests == 0:
        st.info("No gateway traffic yet. Start it with `python -m sprout_core gateway --upstream URL` and send it "
                "a request; it appears here within 10 s.")
        return
    m1, m2, m3, m4 = st.columns(4)
    ui.note_metric("Requests", f"{t.requests:,}", f"{len(t.hours):,} hour(s)", container=m1)
    ui.note_metric("Carbon", ui.fmt_grams(t.carbon_g), "operational + embodied, as recorded", container=m2)
    ui.note_metric("Saved vs all-L0", ui.fmt_grams(t.saved_g), "counterfactual estimate", container=m3, help=t.note)
    ui.note_metric("Evaluator (charged)", ui.fmt_grams(t.evaluator_g),
                   f"net saving {ui.fmt_grams(t.saved_net_g)}", container=m4,
                   help="The evaluator's answers at every level and the upstream's judgements, as recorded")
    mix = V.mix_chart_data(t)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    colors = style.level_color_map(t.levels)
    for lv in t.levels:
        part = mix[mix["level"] == lv]
        fig.add_trace(go.Bar(x=part["hour"], y=part["share"], name=f"{lv} share", marker_color=colors.get(lv)))
    fig.add_trace(go.Scatter(x=t.hours["hour"], y=t.hours["ci_g_per_kwh"], name="CI (g/kWh)", mode="lines+markers",
                             line={"color": "#444"}), secondary_y=True)
    fig.update_layout(barmode="stack", height=360, margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(title_text="share of requests", range=[0, 1], secondary_y=False)
    fig.update_yaxes(title_text="g CO₂e/kWh", secondary_y=True)
    ui.chart(fig, key="live.mix", filename="sprout-live-mix")
    st.dataframe(style.display_cells(V.as_display(t)), hide_index=True, width="stretch", key="live.table")
    st.caption(f"Saved = {t.note}. Energy per request is as each row was recorded (measured, estimated or n/a: "
               "see History for each request's method).")


traffic()
