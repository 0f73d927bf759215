"""Playground: one prompt under each directive level, answers streamed side by side."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sprout_core import metered, store, ui, validate
from sprout_core.errors import InputError, SproutError
from sprout_core.generation import MAX_PROMPT_CHARS, GenerationParams, PromptError

ui.ensure_navigation()

RESULTS_KEY = "pg.results"
ENERGY_KEY = "pg.energy"  # list of metered.MeteredOutcome, same order as pg.results

st.title("💬 Playground")
st.caption("Send one prompt under each directive level. Answers are generated one after another on the same model "
           "and stream into their own column.")

lm = ui.get_model()
if lm is None:
    st.info("Pick a model that loads on the Home page.")
    st.stop()
dset = ui.directive_set(lm)

# No max_chars on the box: a browser-side cap silently drops an over-long paste; the length is checked here
# and said (the text stays in the box to be shortened).
prompt = st.text_area("Prompt", key="pg.prompt", height=120, placeholder="e.g. Why is the sky blue?",
                      help=f"At most {MAX_PROMPT_CHARS:,} characters")
prompt_problem = None
if prompt.strip():
    try:
        validate.text("The prompt", prompt, max_chars=MAX_PROMPT_CHARS)
    except InputError as exc:
        prompt_problem = str(exc)
        st.error(prompt_problem)
c1, c2, c3 = st.columns([3, 1, 1])
levels = c1.multiselect("Directive levels", dset.names, default=dset.names, key="pg.levels",
                        format_func=lambda lv: f"{lv} — {dset.get(lv).text or 'no directive'}")
cap = min(2048, lm.info.context_len - 1)
max_new = c2.number_input("Max new tokens", min_value=1, max_value=cap, value=min(256, cap),
                          step=32, key="pg.max_new", help="Cap on generated tokens per answer")
sample = c3.toggle("Sample", value=False, key="pg.sample", help="Off: greedy decoding (reproducible)")
seed = c3.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="pg.seed", disabled=not sample)
st.caption(f"Model **{lm.info.name}** on {lm.info.device} · directives go in the **{lm.info.placement}** "
           f"{'message' if lm.info.placement == 'system' else 'turn'}.")

with st.expander("Define your own level"):
    cc = st.columns([1, 3, 1])
    new_level = cc[0].text_input("Level", value=f"L{len(dset.levels)}", key="pg.new_level")
    new_text = cc[1].text_input("Directive text", key="pg.new_text", placeholder="e.g. Answer in at most ten words.")
    new_label = cc[2].text_input("Label", key="pg.new_label", placeholder="Ten words")
    if st.button("Add level"):
        try:
            ui.add_custom_level(new_level, new_text, new_label, dset)
            st.rerun()
        except ValueError as exc:
            st.error(str(exc))
    for d in dset.levels:
        if d.custom:
            if st.button(f"Remove {d.level} ({d.text})", key=f"pg.rm.{d.level}"):
                ui.remove_custom_level(d.level)
                st.rerun()

meter = ui.energy_meter(lm, key="pg.energy")  # a server: its shared, token-attributing meter
with st.expander("Carbon: grid zone and hour, PUE, embodied carbon", expanded=False):
    carbon_settings = ui.carbon_settings(key="pg.carbon")
st.caption(f"Energy: `{meter.method}` ({ui.method_badge(meter.method)}) · carbon at "
           f"{carbon_settings.intensity.ci_g_per_kwh:.1f} g CO₂e/kWh ({carbon_settings.intensity.label}), "
           f"PUE {carbon_settings.pue:g}")



# Task-aware directives (docs/tasks.md): the prompt's predicted task and the level mix the per-task policy gives it.
@st.cache_resource(show_spinner="Loading the task classifier…")
def _task_classifier(stamp: float):
    from sprout_core.tasks import classifier as tc

    return tc.load_classifier() if stamp else None


@st.cache_data(show_spinner=False, max_entries=64)
def _task_line(text: str, stamp: float, ci, zone, year):
    from sprout_core.carbon import IntensityChoice
    from sprout_core.tasks import views as task_views

    return task_views.playground_task_line(text, _task_classifier(stamp), IntensityChoice(ci, zone, "", year))


if prompt.strip() and not prompt_problem:
    from sprout_core.tasks import views as task_views

    _it = carbon_settings.intensity
    line = _task_line(prompt, task_views.classifier_stamp(), _it.ci_g_per_kwh, _it.zone, _it.year)
    if line.kind == "ok":
        st.info("🧭 " + line.text)
    elif line.kind == "untrained":
        tcol1, tcol2 = st.columns([3, 1])
        tcol1.caption("🧭 Predicted task: " + line.text)
        if tcol2.button("Train the task classifier", key="pg.task_train"):
            from sprout_core.tasks import classifier as tc

            tbar = st.progress(0.0, text="Embedding prompts for the task classifier…")
            try:
                tc.reference_classifier(progress=lambda d, n: tbar.progress(d / n if n else 1.0,
                                                                            text=f"Embedded {d}/{n} prompts"))
                st.rerun()
            except Exception as exc:  # noqa: BLE001 - training must not break the page
                ui.show_error(exc, "Could not train the task classifier: ")
    else:
        st.caption("🧭 " + line.text)

run = st.button("Run", type="primary", key="pg.run")

if run:
    if not prompt.strip():
        st.warning("Type a prompt first — nothing was run.")
    elif prompt_problem:
        st.warning(f"Nothing was run: {prompt_problem}")
    elif not levels:
        st.warning("Pick at least one directive level.")
    else:
        params = GenerationParams(max_new_tokens=int(max_new), do_sample=bool(sample), seed=int(seed))
        directives = dset.select(levels)
        try:
            run_id = store.new_run_id()
            streams = [metered.metered_stream(lm, prompt, d, params, meter, carbon_settings, run_id=run_id)
                       for d in directives]  # validates the prompt first
        except PromptError as exc:
            st.error(str(exc))
            streams = []
        if streams:
            results, outcomes = [], []
            cols = st.columns(len(streams))
            for col, d, stream in zip(cols, directives, streams):
                col.markdown(f"**{d.level}** · {ui.safe_md(d.text) or '_no directive_'}")
                body, status = col.empty(), col.empty()
                text = ""
                for chunk in stream:
                    text += chunk.text
                    body.markdown(ui.safe_md(text) + " ▌")
                    status.caption(ui.live_energy_caption(chunk.new_tokens, chunk.tokens_per_s, chunk.power_w,
                                                          chunk.energy_j, chunk.method))
                o = stream.outcome
                r = o.result
                ui.show_text(r.text, body, "_(empty answer)_")
                status.caption(f"{r.new_tokens} tokens · {r.total_s:.1f} s · finish: {r.finish_reason} · "
                               f"{ui.fmt_energy(o.reading.energy_j, o.reading.method)}")
                if o.store_error:
                    col.warning(f"Not saved to the history yet: {o.store_error}")
                outcomes.append(o)
                if r.error:
                    col.error(f"Generation failed: {r.error}")
                if r.max_new_tokens_capped:
                    col.warning(f"Max new tokens was cut to {r.max_new_tokens} to fit the model's context.")
                results.append(r)
            st.session_state[RESULTS_KEY] = {"prompt": prompt, "results": results}
            st.session_state[ENERGY_KEY] = outcomes
            st.rerun()

saved = st.session_state.get(RESULTS_KEY)
if saved:
    results = saved["results"]
    st.subheader("Answers")
    st.caption(f"Prompt: {ui.safe_md(saved['prompt'][:300])}")
    cols = st.columns(len(results))
    for col, r in zip(cols, results):
        col.markdown(f"**{r.level}** · {ui.safe_md(r.directive) or '_no directive_'}")
        ui.show_text(r.text, col, "_(empty answer)_")
        col.caption(f"{r.level} answer: {r.new_tokens} new tokens · {r.total_s:.1f} s · finish: {r.finish_reason}")
        if r.error:
            col.error(f"Generation failed: {r.error}")
    base = next((r for r in results if r.level == "L0" and not r.error), None)
    rows = []
    for r in results:
        red = (f"{100 * (1 - r.new_tokens / base.new_tokens):.0f} %" if base and base.new_tokens and r is not base else
               ("—" if r is base else "n/a (no L0 run)"))
        rows.append({
            "level": r.level, "directive": r.directive or "(none)", "new tokens": r.new_tokens,
            "prompt tokens": r.prompt_tokens, "time to first token (s)": r.ttft_s, "total time (s)": r.total_s,
            "tokens/s": r.tokens_per_s, "finish": r.finish_reason, "fewer tokens than L0": red,
        })
    st.subheader("Per level")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={"time to first token (s)": st.column_config.NumberColumn(format="%.2f"),
                                "total time (s)": st.column_config.NumberColumn(format="%.2f"),
                                "tokens/s": st.column_config.NumberColumn(format="%.1f")})
    # Human judge (evaluation issue): the vote is stored as a "human" verdict, shown on the Evaluations page.
    voted = [(i, r) for i, r in enumerate(results) if not r.error]
    if len(voted) > 1:
        v1, v2 = st.columns([3, 1])
        vote = v1.radio("Which answer is best?", [r.level for _, r in voted], index=None, horizontal=True, key="pg.vote")
        if v2.button("Save vote", key="pg.vote.save", disabled=vote is None):
            from contextlib import closing

            from sprout_core.evaluate import db as eval_db

            outs = st.session_state.get(ENERGY_KEY) or []
            recs = {r.level: {"text": r.text, "directive": r.directive, "new_tokens": r.new_tokens, "total_s": r.total_s,
                              "prompt_tokens": r.prompt_tokens, "finish_reason": r.finish_reason,
                              "energy_j": outs[i].reading.energy_j if i < len(outs) else None,
                              "energy_method": outs[i].reading.method if i < len(outs) else "n/a"} for i, r in voted}
            try:
                with closing(eval_db.connect()) as con:
                    eval_db.record_human_vote(con, saved["prompt"], recs, vote, model=lm.info.name)
            except Exception as exc:  # noqa: BLE001 - a failed save must not lose the answers on screen
                ui.show_error(exc, "Vote not saved (the answers stay on screen): ")
            else:
                st.success(f"Vote saved: {vote} is best. It counts as judge 'human' on the Evaluations page.")

outcomes = st.session_state.get(ENERGY_KEY)
if saved and outcomes and len(outcomes) == len(saved["results"]):
    st.subheader("Energy and carbon per level")
    for err in sorted({o.store_error for o in outcomes if o.store_error}):
        st.warning(f"Not saved to the history yet: {err}")
    table = metered.level_table(outcomes, carbon_settings)  # re-priced with the current zone/hour/slider
    run_e = [o.reading.energy_j for o in outcomes]
    run_u = [o.reading.uncertainty_j for o in outcomes]
    k1, k2, k3 = st.columns(3)
    ui.energy_metric("Energy of this run", None if None in run_e else sum(run_e), outcomes[0].reading.method,
                     None if None in run_u else sum(run_u), outcomes[0].reading.source, container=k1)
    run_g = list(table["total (g CO₂e)"])
    ui.carbon_metric("Carbon of this run", None if any(pd.isna(g) for g in run_g) else float(sum(run_g)),
                     f"at {carbon_settings.intensity.ci_g_per_kwh:.0f} g/kWh, PUE {carbon_settings.pue:g}", container=k2)
    sav = table["carbon saving vs L0 (%)"].dropna()
    k3.metric("Best carbon saving vs L0", f"{sav.max():.0f} %" if len(sav) else "n/a",
              delta=f"level {table.loc[sav.idxmax(), 'level']}" if len(sav) else "needs an L0 answer", delta_color="off")
    methods = sorted(set(table["energy method"]))
    st.caption(f"Energy method: {', '.join(f'`{m}` ({ui.method_badge(m)})' for m in methods)} — "
               f"{outcomes[0].reading.source}. Carbon at **{carbon_settings.intensity.ci_g_per_kwh:.1f} g CO₂e/kWh** "
               f"({carbon_settings.intensity.label}), PUE {carbon_settings.pue:g}, embodied: "
               f"{carbon_settings.embodied.name}. Changing the zone, hour or slider re-prices carbon; energy stays as measured.")
    st.dataframe(table, hide_index=True, width="stretch", key="pg.energy_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3g") for c in (
                     "time (s)", "energy (J)", "± energy (J)", "mean power (W)", "J per token", "operational (g CO₂e)",
                     "embodied (g CO₂e)", "total (g CO₂e)")} | {
                     "energy saving vs L0 (%)": st.column_config.NumberColumn(format="%.0f %%"),
                     "carbon saving vs L0 (%)": st.column_config.NumberColumn(format="%.0f %%")})
    e1, e2 = st.columns(2)
    fig_e = go.Figure(go.Bar(
        x=table["level"], y=table["energy (J)"],
        error_y=dict(type="data", array=table["± energy (J)"], visible=bool(table["± energy (J)"].notna().any())),
        text=[ui.fmt_energy(v) for v in table["energy (J)"]], hovertext=table["energy method"]))
    fig_e.update_layout(title=f"Energy per answer (J, {', '.join(methods)})", xaxis_title="directive level",
                        yaxis_title="energy (J)", height=360)
    e1.plotly_chart(fig_e, width="stretch", key="pg.energy_chart")
    fig_c = go.Figure([go.Bar(name="operational", x=table["level"], y=table["operational (g CO₂e)"]),
                       go.Bar(name="embodied", x=table["level"], y=table["embodied (g CO₂e)"])])
    fig_c.update_layout(barmode="stack", title=f"Carbon per answer (g CO₂e, from {', '.join(methods)} energy)", xaxis_title="directive level",
                        yaxis_title="g CO₂e", height=360)
    e2.plotly_chart(fig_c, width="stretch", key="pg.carbon_chart")

    st.subheader("The same answers elsewhere")
    known = [o for o in outcomes if o.reading.energy_j is not None]
    if not known:
        st.info("Energy is n/a for these answers, so there is nothing to price in other zones.")
    else:
        total_j = sum(o.reading.energy_j for o in known)
        total_s = sum(o.reading.duration_s for o in known)
        year = carbon_settings.intensity.year
        try:
            where, msgs = metered.elsewhere_table(total_j, total_s, carbon_settings, year=year)
        except (SproutError, ValueError, OSError) as exc:  # missing or broken data must not break the page
            where, msgs = pd.DataFrame(), [str(exc)]
        for m in msgs:
            st.warning(m)
        if not where.empty:
            st.caption(f"All {len(known)} answers' energy ({ui.fmt_energy(total_j, known[0].reading.method)}) priced at "
                       f"each zone's yearly mean intensity ({carbon_settings.intensity.column}"
                       f"{', ' + str(year) if year else ', latest year per zone'}), PUE {carbon_settings.pue:g}, plus "
                       f"the same embodied share. Carbon intensity data: Electricity Maps (ODbL 1.0).")
            fig_z = go.Figure(go.Bar(x=where["total (g CO₂e)"], y=where["zone"], orientation="h",
                                     hovertext=[f"{c:.0f} g/kWh" for c in where["carbon intensity (g/kWh)"]]))
            fig_z.update_layout(title="Same energy, other grids (g CO₂e, lowest first)", xaxis_title="g CO₂e",
                                yaxis=dict(autorange="reversed"), height=max(300, 22 * len(where)))
            st.plotly_chart(fig_z, width="stretch", key="pg.elsewhere_chart")

