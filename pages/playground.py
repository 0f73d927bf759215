"""Playground: one prompt under each directive level, answers streamed side by side with live energy and carbon.

A run goes in two steps so nothing can silently discard it: pressing Run queues it and reruns with
every input locked; that rerun generates level after level (status line, live J / W / g CO₂e, a Stop
button), then shows the results. A run cut short (Stop, reload, another page) keeps its answers,
marked cancelled; the partial answer is stored in the History as aborted with the energy so far.
"""
from contextlib import closing

import streamlit as st

from sprout_core import metered, store, style, ui, validate
from sprout_core.carbon import IntensityChoice
from sprout_core.errors import InputError, SproutError
from sprout_core.evaluate import db as eval_db
from sprout_core.generation import MAX_PROMPT_CHARS, GenerationParams, PromptError
from sprout_core.run import CapError
from sprout_core.tasks import classifier as task_clf
from sprout_core.tasks import views as task_views
from sprout_core.views import playground as V

ui.ensure_navigation()

RUN_KEY = "pg.results"  # the PlaygroundRun in progress or the last one
STOP_KEY = "pg.stop"
RUN_METRIC_PX = 250  # one run metric (px): three fit a row at 1400 px, they wrap at 1000 px instead of cutting
MSG_KEY = "pg.run_message"  # a message from the Run button's check, shown once

st.title("Playground")
st.caption("Send one prompt under each directive level. Answers are generated one after another on the same model "
           "and stream into their own column, with the energy and carbon they cost as they are written.")

run: V.PlaygroundRun | None = ui.current_run(RUN_KEY, STOP_KEY)
generating = run is not None and run.phase == V.QUEUED
if run is not None and run.finished and not st.session_state.get("pg.prompt"):
    # A browser keeps a locked box's text across the run; a test harness (AppTest) may not: keep it too.
    st.session_state["pg.prompt"] = run.prompt
locked = generating

lm = ui.get_model()
if lm is None:
    st.info("Pick a model that loads on the Home page.")
    st.stop()
dset = ui.directive_set(lm)

# No max_chars on the box: a browser-side cap silently drops an over-long paste; the length is checked here
# and said (the text stays in the box to be shortened).
prompt = st.text_area("Prompt", key="pg.prompt", height=120, placeholder="e.g. Why is the sky blue?",
                      help=f"At most {MAX_PROMPT_CHARS:,} characters", disabled=locked)
prompt_problem = None
if prompt.strip():
    try:
        validate.text("The prompt", prompt, max_chars=MAX_PROMPT_CHARS)
    except InputError as exc:
        prompt_problem = str(exc)
        st.error(ui.error_text(exc))
c1, c2, c3 = st.columns([2, 1, 1])  # the toggle column fits "Sample" at 1000 px
# chips show the level only (a directive in a chip is cut to "L2 — A…"); the directives are spelt out below
levels = c1.multiselect("Directive levels", dset.names, default=dset.names, key="pg.levels", disabled=locked,
                        help="Each level's directive is listed under the prompt settings.")
cap = min(2048, lm.info.context_len - 1)
max_new = c2.number_input("Max new tokens", min_value=1, max_value=cap, value=min(256, cap), disabled=locked,
                          step=32, key="pg.max_new", help="Cap on generated tokens per answer")
sample = c3.toggle("Sample", value=False, key="pg.sample", help="Off: greedy decoding (reproducible)", disabled=locked)
seed = c3.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="pg.seed", disabled=locked or not sample)
st.caption(" · ".join(f"**{d.level}** {ui.safe_md(d.text.rstrip('. ')) if d.text else 'no directive'}" for d in dset.levels) + ".")
st.caption(f"Model **{ui.plain(lm.info.name)}** on {lm.info.device} · directives go in the **{lm.info.placement}** "
           f"{'message' if lm.info.placement == 'system' else 'turn'}.")
caps_line = ui.class_caps_line()
if caps_line:
    st.caption(caps_line)

with st.expander("Define your own level"):
    cc = st.columns([1, 3, 1])
    new_level = cc[0].text_input("Level", value=f"L{len(dset.levels)}", key="pg.new_level", disabled=locked)
    new_text = cc[1].text_input("Directive text", key="pg.new_text", placeholder="e.g. Answer in at most ten words.",
                                disabled=locked)
    new_label = cc[2].text_input("Label", key="pg.new_label", placeholder="Ten words", disabled=locked)
    if st.button("Add level", disabled=locked):
        try:
            ui.add_custom_level(new_level, new_text, new_label, dset)
            st.rerun()
        except ValueError as exc:
            st.error(ui.error_text(exc))
    for d in dset.levels:
        if d.custom:
            if st.button(f"Remove {d.level} ({d.text})", key=f"pg.rm.{d.level}", disabled=locked):
                ui.remove_custom_level(d.level)
                st.rerun()

meter = ui.energy_meter(lm, key="pg.energy", disabled=locked)  # a server: its shared, token-attributing meter
with st.expander("Carbon: grid zone and hour, PUE, embodied carbon", expanded=False):
    carbon_settings = ui.carbon_settings(key="pg.carbon", disabled=locked)
st.caption(f"Energy: `{meter.method}` ({ui.method_badge(meter.method)}) · carbon at "
           f"{carbon_settings.intensity.ci_g_per_kwh:.1f} g CO₂e/kWh ({ui.plain(carbon_settings.intensity.label)}), "
           f"PUE {carbon_settings.pue:g}.")


# Task-aware directives (docs/tasks.md): the prompt's predicted task and the level mix the per-task policy gives it.
@st.cache_resource(show_spinner="Loading the task classifier…")
def _task_classifier(stamp: float):
    return task_clf.load_classifier() if stamp else None


@st.cache_data(show_spinner=False, max_entries=64)
def _task_line(text: str, stamp: float, ci, zone, year):
    return task_views.playground_task_line(text, _task_classifier(stamp), IntensityChoice(ci, zone, "", year))


task = None
if prompt.strip() and not prompt_problem:
    _it = carbon_settings.intensity
    line = _task_line(prompt, task_views.classifier_stamp(), _it.ci_g_per_kwh, _it.zone, _it.year)
    if line.kind == "ok":
        st.info(line.text, icon=":material/explore:")
        task = line.policy.task if line.policy else None
    elif line.kind == "untrained":
        tcol1, tcol2 = st.columns([2, 1])
        tcol1.caption("Predicted task: " + line.text)
        ui.train_task_classifier("pg.task_train", container=tcol2, disabled=locked)
    else:
        st.caption(line.text)

def queue_run(lm, dset, meter, settings, rendered_prompt: str, task: str | None) -> None:
    """Run button callback (runs before the script): check the inputs and queue the run, so the script run
    that follows renders every input locked and generates at once."""
    ss = st.session_state
    text, chosen = ss.get("pg.prompt", ""), ss.get("pg.levels", [])
    if not text.strip():
        ss[MSG_KEY] = ("warning", "Type a prompt first — nothing was run.")
        return
    try:
        validate.text("The prompt", text, max_chars=MAX_PROMPT_CHARS)
    except InputError as exc:
        ss[MSG_KEY] = ("warning", f"Nothing was run: {exc}")
        return
    if not chosen:
        ss[MSG_KEY] = ("warning", "Pick at least one directive level.")
        return
    sampling = bool(ss.get("pg.sample", False))
    params = GenerationParams(max_new_tokens=int(ss.get("pg.max_new", 256)), do_sample=sampling,
                              seed=int(ss.get("pg.seed", 0)))
    directives = dset.select(chosen)
    try:
        for d in directives:  # validates the prompt for every level before anything runs
            metered.metered_stream(lm, text, d, params, meter, settings, save=False)
    except PromptError as exc:
        ss[MSG_KEY] = ("error", str(exc))
        return
    run = V.PlaygroundRun(store.new_run_id(), text, list(chosen), task if text == rendered_prompt else None,
                          params=params, directives=directives)
    try:
        run, _notes = ui.hold_to_caps(run)  # class mode: the operator's caps on prompt length and tokens per run
    except CapError as exc:
        ss[MSG_KEY] = ("warning", f"Nothing was run: {exc}")
        return
    ss[RUN_KEY] = run


st.button("Run", type="primary", key="pg.run", disabled=locked, on_click=queue_run,
          args=(lm, dset, meter, carbon_settings, prompt, task))
msg = st.session_state.pop(MSG_KEY, None)
if msg:
    getattr(st, msg[0])(msg[1])

if generating:
    ui.stream_run(run, lm, meter, carbon_settings, stop_key=STOP_KEY, label="Playground")
    st.rerun()  # unlock the inputs and show the results

# ---------------------------------------------------------------------------------------------- results
if run is not None and run.finished:
    st.subheader("Answers")
    for note in run.notes:
        st.info(note)
    if run.cancelled:
        st.warning(run.summary(), icon=":material/warning:")
    st.caption(f"Prompt: {ui.safe_md(run.prompt[:300])}")
    cols = st.columns(len(run.levels))
    for k, (col, lv) in enumerate(zip(cols, run.levels)):
        o = run.outcome(lv)
        state = run.status_of(lv)
        ui.level_heading(lv, o.result.directive if o else dset.get(lv).text if lv in dset.names else "", container=col,
                         position=k, extra="" if state == "complete" else state)
        if o is None:
            col.caption(f"{lv}: not run — the run was cancelled before it started.")
            continue
        ui.show_text(o.result.text, col, "_(empty answer)_")
        col.caption(V.done_caption(o))
        if o.result.error:
            col.error(f"Generation failed: {ui.error_text(o.result.error)}")
        if o.result.max_new_tokens_capped:
            col.warning(f"Max new tokens was cut to {o.result.max_new_tokens:,} to fit the model's context.")

    st.subheader("Per level")
    st.dataframe(V.per_level_table(run, carbon_settings), hide_index=True, width="stretch", key="pg.level_table", placeholder="n/a",
                 column_config={"time to first token (s)": st.column_config.NumberColumn(format="%.2f"),
                                "total time (s)": st.column_config.NumberColumn(format="%.2f"),
                                "tokens/s": st.column_config.NumberColumn(format="%.1f"),
                                "energy saving vs L0 (%)": st.column_config.NumberColumn(format="%.0f %%"),
                                "carbon saving vs L0 (%)": st.column_config.NumberColumn(format="%.0f %%")}
                 | {c: st.column_config.NumberColumn(format="%.3g") for c in ("energy (mJ)", "energy (J)", "energy (kJ)",
                                                                               "energy (Wh)", "carbon (µg CO₂e)",
                                                                               "carbon (mg CO₂e)", "carbon (g CO₂e)",
                                                                               "carbon (kg CO₂e)")})
    st.caption("Energy and carbon in one unit per column; carbon is operational + embodied at the settings above "
               "(changing them re-prices carbon; energy stays as measured).")

    # Human judge (evaluation issue): the vote is stored as a "human" verdict, shown on the Evaluations page.
    voted = [o for o in run.outcomes if not o.result.error and not o.aborted]
    if len(voted) > 1:
        v1, v2 = st.columns([3, 1])
        vote = v1.radio("Which answer is best?", [o.result.level for o in voted], index=None, horizontal=True,
                        key="pg.vote")
        if v2.button("Save vote", key="pg.vote.save", disabled=vote is None):
            try:
                with closing(eval_db.connect()) as con:
                    eval_db.record_human_vote(con, run.prompt, {o.result.level: o.record.as_row() for o in voted}, vote,
                                              model=lm.info.name)
            except Exception as exc:  # noqa: BLE001 - a failed save must not lose the answers on screen
                ui.show_error(exc, "Vote not saved (the answers stay on screen): ")
            else:
                st.success(f"Vote saved: {vote} is best. It counts as judge 'human' on the Evaluations page.")

if run is not None and run.finished and run.outcomes:
    outcomes = run.outcomes
    st.subheader("Energy and carbon per level")
    for err in sorted({o.store_error for o in outcomes if o.store_error}):
        st.warning(f"Not saved to the history yet: {ui.error_text(err)}")
    table = V.measurements_table(run, carbon_settings)  # re-priced with the current zone/hour/slider
    totals = V.run_totals(outcomes, settings=carbon_settings)
    run_u = [o.reading.uncertainty_j for o in outcomes]
    k1 = k2 = k3 = st.container(horizontal=True, gap="small")  # fixed-width metrics wrap at 1000 px, never cut
    ui.energy_metric("Energy of this run", totals.energy_j, outcomes[0].reading.method,
                     None if None in run_u else sum(run_u), outcomes[0].reading.source, container=k1, width=RUN_METRIC_PX)
    ui.carbon_metric("Carbon of this run", totals.carbon_g,
                     f"at {carbon_settings.intensity.ci_g_per_kwh:.0f} g/kWh, PUE {carbon_settings.pue:g}", container=k2, width=RUN_METRIC_PX)
    sav = table["carbon saving vs L0 (%)"].dropna()
    l0_done = run.status_of("L0") == "complete"
    ui.note_metric("Best carbon saving vs L0", f"{sav.max():.0f} %" if len(sav) else "n/a",
                   f"level {table.loc[sav.idxmax(), 'level']}" if len(sav) else
                   ("no other complete level to compare" if l0_done else "needs a complete L0 answer"), container=k3, width=RUN_METRIC_PX)
    methods = sorted(set(table["energy method"]))
    st.caption(f"Energy method: {', '.join(f'`{m}` ({ui.method_badge(m)})' for m in methods)} — "
               f"{outcomes[0].reading.source}. Carbon at **{carbon_settings.intensity.ci_g_per_kwh:.1f} g CO₂e/kWh** "
               f"({ui.plain(carbon_settings.intensity.label)}), PUE {carbon_settings.pue:g}, embodied: "
               f"{carbon_settings.embodied.name}. Changing the zone, hour or slider re-prices carbon; energy stays as measured."
               + (" Aborted answers count the energy used until they were cut." if any(o.aborted for o in outcomes) else ""),
               help=" ".join(style.method_help(m) for m in methods))
    ui.png_hint()
    e1, e2 = st.columns(2)
    ui.chart(V.energy_figure(table), key="pg.energy_chart", filename="sprout-energy-per-answer", container=e1)
    ui.chart(V.carbon_figure(table), key="pg.carbon_chart", filename="sprout-carbon-per-answer", container=e2)
    with st.expander("All measurements (J, W, ±, operational and embodied g, flags)"):
        st.dataframe(table, hide_index=True, width="stretch", key="pg.energy_table", placeholder="n/a",
                     column_config={c: st.column_config.NumberColumn(format="%.3g") for c in (
                         "time (s)", "energy (J)", "± energy (J)", "mean power (W)", "J per token", "operational (g CO₂e)",
                         "embodied (g CO₂e)", "total (g CO₂e)")} | {
                         "energy saving vs L0 (%)": st.column_config.NumberColumn(format="%.0f %%"),
                         "carbon saving vs L0 (%)": st.column_config.NumberColumn(format="%.0f %%")})

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
            where, msgs = None, [str(exc)]
        for m in msgs:
            st.warning(ui.error_text(m))
        if where is not None and not where.empty:
            st.caption(f"All {len(known)} answers' energy ({ui.fmt_energy(total_j, known[0].reading.method)}) priced at "
                       f"each zone's yearly mean intensity ({carbon_settings.intensity.column}"
                       f"{f', {year:d}' if year else ', latest year per zone'}), PUE {carbon_settings.pue:g}, plus "
                       f"the same embodied share. Carbon intensity data: Electricity Maps (ODbL 1.0).")
            ui.chart(V.elsewhere_figure(where, carbon_settings.intensity.zone), key="pg.elsewhere_chart",
                     filename="sprout-same-answers-elsewhere")

# ================================================================ blind comparison (issue 18.5) — quality helper
# One delimited block: the logic is in sprout_core/views/blind.py; votes feed the one quality estimate.
st.subheader("Blind comparison: be the judge")
st.caption("Two answers to the same prompt from two directive levels, without their labels and in a random order "
           "(as compar:IA does). Pick the better one, a tie, or both bad; then the levels, tokens, energy and carbon "
           "are revealed. Pairs come from judged evaluation answers, so your verdict is compared with the judge's "
           "on the Evaluations page." + (" On this shared Sprout your votes stay yours until the operator merges "
                                         "them." if ui.shared() else ""))
BLIND_PAIR, BLIND_CHOICE = "pg.blind.pair", "pg.blind.choice"
if st.button("New blind pair", key="pg.blind.new"):
    import random as _random

    from sprout_core.evaluate import results as _R
    from sprout_core.views import blind as _blind

    with ui.error_boundary("No blind pair could be drawn: "):
        _pool = _R.shipped_tables().concat(_R.own_tables(visitor=ui.visitor_id()))
        st.session_state[BLIND_PAIR] = _blind.draw_pair(_pool, _random.Random())
        st.session_state[BLIND_CHOICE] = None
        if st.session_state[BLIND_PAIR] is None:
            st.info("No judged answers to compare yet: run an evaluation (Evaluations page) first.")
_pair = st.session_state.get(BLIND_PAIR)
if _pair is not None:
    from sprout_core.views import blind as _blind

    st.markdown(f"**Prompt** ({ui.plain(_pair.task)})")
    ui.show_text(_pair.prompt, empty="_(empty prompt)_")
    _ca, _cb = st.columns(2)
    for _col, _ans in zip((_ca, _cb), _pair.answers):
        with _col:
            st.markdown(f"**Answer {_ans.label}**")
            with st.container(height=260, border=True, key=f"pg.blind.ans.{_ans.label}"):
                ui.show_text(_ans.text, empty="_(empty answer)_")
    _choice = st.session_state.get(BLIND_CHOICE)
    if _choice is None:
        _cols = st.columns(len(_blind.CHOICES))
        for _c, (_k, _label) in zip(_cols, _blind.CHOICES.items()):
            if _c.button(_label, key=f"pg.blind.vote.{_k}"):
                try:
                    _added = _blind.record_vote(_pair, _k, visitor=ui.visitor_id(), merged=not ui.shared())
                except Exception as exc:  # noqa: BLE001 - a failed save keeps the pair on screen
                    ui.show_error(exc, "Vote not saved (the pair stays on screen): ")
                else:
                    st.session_state[BLIND_CHOICE] = _k
                    st.session_state["pg.blind.added"] = _added
                    st.rerun()
    else:
        _rev = _blind.reveal(_pair, _choice, carbon_settings)
        st.success(("Vote saved. " if st.session_state.get("pg.blind.added", True) else
                    "You had already voted on this pair; the first vote is kept. ") + _rev.sentence)
        st.table(_rev.table.set_index("answer"))
        st.caption(f"Energy as stored with the answers (method shown); carbon at "
                   f"{carbon_settings.intensity.ci_g_per_kwh:.1f} g CO₂e/kWh ({ui.plain(carbon_settings.intensity.label)}), "
                   f"PUE {carbon_settings.pue:g}. Your vote counts as judge '{_blind.JUDGE}' on the Evaluations page.")
# ============================================================== end of the blind comparison block
