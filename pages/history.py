"""History: every request Sprout generated, with its energy and carbon, filterable and downloadable."""
import datetime as dt

import plotly.express as px
import streamlit as st

from sprout_core import store, ui

ui.ensure_navigation()
st.title("🗂️ History")
st.caption("Every answer generated in the Playground or by `python -m sprout_core generate` is stored in a local "
           "SQLite database, with its energy (and how it was obtained) and carbon. Unknown values show as empty, "
           "never as 0.")


@st.cache_data(show_spinner=False, max_entries=32)
def _load(filters: dict, signature: tuple):
    """Filtered requests and the filter options; ``signature`` changes whenever the database file does."""
    df = store.query_requests(filters)
    opts = {c: store.distinct_values(c) for c in ("model", "level", "energy_method", "zone", "origin")}
    return df, opts


try:
    sig = store.db_signature()
    _, opts = _load({}, sig)
except store.StoreError as exc:
    st.error(str(exc))
    st.stop()

with st.expander("Filters", expanded=True):
    c1, c2, c3 = st.columns(3)
    models = c1.multiselect("Model", opts["model"], key="hist.models")
    levels = c2.multiselect("Level", opts["level"], key="hist.levels")
    methods = c3.multiselect("Energy method", opts["energy_method"], key="hist.methods")
    c4, c5, c6 = st.columns(3)
    zones = c4.multiselect("Zone", opts["zone"], key="hist.zones")
    origins = c5.multiselect("Origin", opts["origin"], key="hist.origins")
    text = c6.text_input("Text in prompt or answer", key="hist.text")
    d1, d2 = st.columns(2)
    use_dates = d1.toggle("Only between dates (UTC)", key="hist.use_dates")
    today = dt.datetime.now(dt.timezone.utc).date()
    dates = d2.date_input("Dates (UTC)", value=(today - dt.timedelta(days=30), today), key="hist.dates",
                          disabled=not use_dates)

filters = {"models": models, "levels": levels, "methods": methods, "zones": zones, "origins": origins,
           "text": text.strip() or None}
if use_dates:
    if isinstance(dates, (tuple, list)) and len(dates) == 2:
        filters["since"], filters["until"] = dates[0].isoformat(), dates[1].isoformat()
    else:
        st.info("Pick a start and an end date.")

try:
    df, _ = _load(filters, sig)
except store.StoreError as exc:
    st.error(str(exc))
    st.stop()
queued = store.pending_requests()
if queued:
    st.warning(f"{queued} answer(s) are waiting in the pending queue: the database could not be written when they "
               "were made. They are added here automatically as soon as it can be written again.")

if df.empty:
    st.info("No stored requests match. Run a prompt in the Playground and it will appear here."
            if not any(v for v in filters.values()) else "No stored requests match these filters.")
    st.stop()

s = store.summarize(df)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Requests", f"{s.requests:,}")
m2.metric("New tokens", f"{s.new_tokens:,}")
m3.metric("Carbon (known rows)", ui.fmt_grams(s.carbon_total_g),
          help="Sum over every energy method below (each line says which part comes from which method)"
               + (f"; {s.unknown_carbon} request(s) with unknown carbon are not counted" if s.unknown_carbon else ""))
m4.metric("Energy unknown", f"{s.unknown_energy} request(s)")
carbon_by_method = df.dropna(subset=["carbon_total_g"]).groupby("energy_method")["carbon_total_g"].sum()
for method, j in s.energy_j_by_method.items():
    g = carbon_by_method.get(method)
    carbon_txt = f", carbon **{ui.fmt_grams(float(g))}** from it" if g is not None else ""
    st.caption(f"Energy, {ui.method_badge(method)} (`{method}`): **{ui.fmt_energy(j)}** in total{carbon_txt}")

SHOW = ["ts_utc", "origin", "model", "device", "level", "task", "prompt", "answer", "new_tokens", "total_s", "energy_j",
        "energy_method", "power_w_mean", "zone", "ci_g_per_kwh", "carbon_operational_g", "carbon_embodied_g",
        "carbon_total_g", "energy_flags"]
st.dataframe(
    df[SHOW], hide_index=True, width="stretch", key="hist.table",
    column_config={
        "ts_utc": st.column_config.TextColumn("time (UTC)"),
        "new_tokens": st.column_config.NumberColumn("new tokens"),
        "total_s": st.column_config.NumberColumn("time (s)", format="%.2f"),
        "energy_j": st.column_config.NumberColumn("energy (J)", format="%.3g"),
        "energy_method": st.column_config.TextColumn("energy method"),
        "power_w_mean": st.column_config.NumberColumn("mean power (W)", format="%.2f"),
        "ci_g_per_kwh": st.column_config.NumberColumn("CI (g/kWh)", format="%.1f"),
        "carbon_operational_g": st.column_config.NumberColumn("operational (g CO₂e)", format="%.3g"),
        "carbon_embodied_g": st.column_config.NumberColumn("embodied (g CO₂e)", format="%.3g"),
        "carbon_total_g": st.column_config.NumberColumn("total (g CO₂e)", format="%.3g"),
    },
)
st.download_button("Download CSV (all columns)", df.to_csv(index=False).encode("utf-8"), file_name="sprout_history.csv",
                   mime="text/csv", key="hist.csv")

known = df[df["energy_j"].notna() & df["new_tokens"].gt(0)]
if not known.empty:
    per = (known.assign(j_per_token=known["energy_j"] / known["new_tokens"])
           .groupby(["level", "energy_method"], as_index=False)
           .agg(mean_energy_j=("energy_j", "mean"), mean_j_per_token=("j_per_token", "mean"), requests=("id", "count")))
    fig = px.bar(per, x="level", y="mean_energy_j", color="energy_method", barmode="group",
                 hover_data=["mean_j_per_token", "requests"],
                 labels={"mean_energy_j": "mean energy per request (J)", "level": "directive level",
                         "energy_method": "method"},
                 title="Mean energy per request by level (matching rows)")
    st.plotly_chart(fig, width="stretch", key="hist.chart")
