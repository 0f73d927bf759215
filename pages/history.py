"""History: every request Sprout generated, with its energy and carbon, filterable and downloadable."""
import datetime as dt

import streamlit as st

from sprout_core import store, style, ui
from sprout_core.views import history as V

ui.ensure_navigation()
st.title("History")
st.caption("Every answer generated in the Playground, the Lesson or by `python -m sprout_core generate` is stored in a local "
           "SQLite database, with its energy (and how it was obtained) and carbon. Unknown values show as n/a, "
           "never as 0. An answer cut short (Stop, reload, leaving the page) is kept with status *aborted* and the "
           "energy it used until then.")


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
    st.error(ui.error_text(exc))
    st.stop()

with st.expander("Filters", expanded=True):
    c1, c2, c3 = st.columns(3)
    models = c1.multiselect("Model", opts["model"], key="hist.models")
    levels = c2.multiselect("Level", opts["level"], key="hist.levels")
    methods = c3.multiselect("Energy method", opts["energy_method"], key="hist.methods")
    c4, c5, c6 = st.columns(3)
    zones = c4.multiselect("Zone", opts["zone"], key="hist.zones")
    origins = c5.multiselect("Origin", opts["origin"], key="hist.origins")
    statuses = c6.multiselect("Status", ["complete", "aborted", "error"], key="hist.status",
                              help="aborted: cut short (Stop, reload, another page) — partial answer, energy until then")
    d1, d2, d3 = st.columns(3)
    text = d1.text_input("Text in prompt or answer", key="hist.text")
    use_dates = d2.toggle("Date range", key="hist.use_dates", help="Only answers between the two dates (UTC)")
    today = dt.datetime.now(dt.timezone.utc).date()
    dates = d3.date_input("Dates (UTC)", value=(today - dt.timedelta(days=30), today), key="hist.dates",
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
    st.error(ui.error_text(exc))
    st.stop()
queued = store.pending_requests()
if queued:
    st.warning(f"{style.fmt_count(queued, 'answer')} waiting in the pending queue: the database could not be written when they "
               "were made. They are added here automatically as soon as it can be written again.")

if statuses:
    df = V.with_status(df, statuses)
if df.empty:
    st.info("No stored requests match. Run a prompt in the Playground and it will appear here."
            if not (statuses or any(v for v in filters.values())) else "No stored requests match these filters.")
    st.stop()

s = store.summarize(df)
# two rows of two: four metrics in one row cut their values at 1000 px once History holds a few rows
m1, m2 = st.columns(2)
m3, m4 = st.columns(2)
ui.note_metric("Requests", f"{s.requests:,}", f"{int((df['finish_reason'] == 'aborted').sum()):,} aborted", container=m1)
ui.note_metric("New tokens", f"{s.new_tokens:,}", container=m2)
ui.note_metric("Carbon (known rows)", ui.fmt_grams(s.carbon_total_g), "every energy method below", container=m3,
               help="Sum over every energy method below (each line says which part comes from which method)"
                    + (f"; {style.fmt_count(s.unknown_carbon, 'request')} with unknown carbon not counted" if s.unknown_carbon else ""))
ui.note_metric("Energy unknown", style.fmt_count(s.unknown_energy, "request"), container=m4)
carbon_by_method = df.dropna(subset=["carbon_total_g"]).groupby("energy_method")["carbon_total_g"].sum()
for method, j in s.energy_j_by_method.items():
    g = carbon_by_method.get(method)
    carbon_txt = f", carbon **{ui.fmt_grams(float(g))}** from it" if g is not None else ""
    st.caption(f"Energy, {ui.method_badge(method)} (`{method}`): **{ui.fmt_energy(j)}** in total{carbon_txt}.",
               help=style.method_help(method))

show = V.display_table(df)
st.dataframe(
    show, hide_index=True, width="stretch", key="hist.table", placeholder="n/a",
    column_config={
        "time (UTC)": st.column_config.DatetimeColumn("time (UTC)", format="D MMM YYYY, HH:mm:ss", timezone="UTC"),
        "prompt": st.column_config.TextColumn("prompt", width="medium"),
        "answer": st.column_config.TextColumn("answer", width="medium"),
        "CI (g/kWh)": st.column_config.NumberColumn(format="%.0f"),
        "time (s)": st.column_config.NumberColumn(format="%.2f"),
    } | {c: st.column_config.NumberColumn(format="%.3g") for c in show.columns if c.startswith(("energy (", "carbon ("))},
)
st.caption("Key columns first; scroll right for the model, seconds and run id. The CSV has every column, full texts "
           "and the energy's source, uncertainty and flags.")
st.download_button("Download CSV (all columns)", V.csv_frame(df).to_csv(index=False).encode("utf-8"), file_name="sprout_history.csv",
                   mime="text/csv", key="hist.csv")

fig = V.energy_by_level_figure(df)
if fig is not None:
    ui.chart(fig, key="hist.chart", filename="sprout-history-energy-by-level")
