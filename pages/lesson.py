"""Lesson: a guided path through Sprout's story in four steps, for a class or a talk.

Each step shows one chart (downloadable as PNG for slides), one sentence and a link to the page that
goes deeper. Step 1 runs the loaded model; steps 2–4 use the public grid traces and a profile.
"""
import calendar

import streamlit as st

from sprout_core import defaults, grid, metered, profiles, store, ui
from sprout_core.errors import SproutError
from sprout_core.generation import GenerationParams, PromptError
from sprout_core.views import lesson as L
from sprout_core.views import playground as runs

ui.ensure_navigation()

RUN_KEY = "lesson.run"
STOP_KEY = "lesson.stop"
STEP_KEY = "lesson.step"
MSG_KEY = "lesson.message"
TITLES = [f"{k + 1} · {short}" for k, (_, short, _, _, _) in enumerate(L.STEPS)]

st.title("Lesson: what a directive saves")
st.caption("Four steps, one idea each: a shorter answer costs less; the same answer costs more on a dirtier grid; so "
           "an optimizer asks for brevity when the grid is dirty; over a month that adds up. Every chart has a PNG "
           "download for slides (hover it, click the camera icon).")


def go(delta: int) -> None:
    st.session_state[STEP_KEY] = TITLES[max(0, min(len(TITLES) - 1, TITLES.index(st.session_state[STEP_KEY]) + delta))]


st.session_state.setdefault(STEP_KEY, TITLES[0])
run = ui.current_run(RUN_KEY, STOP_KEY)
generating = run is not None and run.phase == runs.QUEUED
step_title = st.radio("Step", TITLES, key=STEP_KEY, horizontal=True, label_visibility="collapsed", disabled=generating)
k = TITLES.index(step_title)
key, _, title, deeper, deeper_label = L.STEPS[k]


@st.cache_data(show_spinner="Reading the grid traces…", ttl=600)
def lesson_traces(view: tuple) -> list:  # view: grid.sources_signature(), one entry per visitor
    """One trace per zone: the app's default year (sprout_core.defaults) where the zone has it, else its latest."""
    infos, _ = grid.list_traces()
    years: dict[str, list[int]] = {}
    for i in infos:
        years.setdefault(i.zone, []).append(i.year)
    return [grid.load_trace(z, defaults.default_year(ys)) for z, ys in sorted(years.items())]


def queue_run(lm, directives, meter, settings) -> None:
    """Run button callback (before the script runs): check the prompt and queue the three answers, so the
    script run that follows locks the inputs and generates at once."""
    ss = st.session_state
    prompt = ss.get("lesson.prompt", L.DEFAULT_PROMPT)
    params = GenerationParams(max_new_tokens=int(ss.get("lesson.max_new", L.DEFAULT_MAX_NEW)))
    try:
        for d in directives:
            metered.metered_stream(lm, prompt, d, params, meter, settings, save=False)
    except PromptError as exc:
        ss[MSG_KEY] = str(exc)
        return
    run = runs.PlaygroundRun(store.new_run_id(), prompt, [d.level for d in directives], params=params,
                             directives=directives)
    try:
        run, _notes = ui.hold_to_caps(run)  # class mode: the operator's caps (sprout_core.run.apply_caps)
    except SproutError as exc:
        ss[MSG_KEY] = str(exc)
        return
    ss[RUN_KEY] = run


def answer_energy() -> tuple[float, float, str] | None:
    """Energy (J), duration (s) and a label of step 1's L0 answer; None before step 1 has run."""
    o = run.outcome("L0") if run is not None and run.finished else None
    if o is None or o.aborted or o.reading.energy_j is None:
        return None
    return o.reading.energy_j, o.reading.duration_s, f"step 1's L0 answer, {o.reading.method}"


def show(step: L.Step, filename: str) -> None:
    ui.chart(step.figure, key=f"lesson.chart.{key}", filename=filename)
    st.markdown(step.sentence)
    if step.note:
        st.caption(step.note)


with st.container(border=True):
    st.subheader(f"Step {k + 1:d} · {title}")
    try:
        if key == "prompt":
            lm = ui.get_model()
            if lm is None:
                st.stop()
            dset = ui.directive_set(lm)
            directives = list(dset.levels)[: L.LESSON_LEVELS]
            c1, c2 = st.columns([4, 1])
            prompt = c1.text_input("Prompt", L.DEFAULT_PROMPT, key="lesson.prompt", disabled=generating)
            max_new = c2.number_input("Max new tokens", 8, 1024, L.DEFAULT_MAX_NEW, 8, key="lesson.max_new", disabled=generating,
                                      help="Cap on each answer's new tokens. The default lets each level end on its "
                                           "own; an answer the cap cuts is named under the chart.")
            settings, warns = metered.default_settings()
            meter = ui.default_meter(lm)
            under = ", ".join(f"{d.level} ({d.text or 'no directive'})" for d in directives)
            st.caption(f"{ui.plain(lm.info.name)} answers under {under}. Energy `{meter.method}`; carbon at "
                       f"{ui.plain(settings.intensity.label)}.")
            for w in warns:
                st.warning(w)
            st.button("Run the three answers", type="primary", key="lesson.go", disabled=generating,
                      on_click=queue_run, args=(lm, directives, meter, settings))
            msg = st.session_state.pop(MSG_KEY, None)
            if msg:
                st.error(ui.error_text(msg))
            if generating:
                ui.stream_run(run, lm, meter, settings, stop_key=STOP_KEY, label="the lesson", origin="lesson")
                st.rerun()
            if run is not None and run.finished:
                for note in run.notes:
                    st.info(ui.plain(note))  # run.notes: Sprout's sentences about the class caps
                if run.cancelled:
                    st.warning(run.summary())
                try:
                    show(L.prompt_step(run.outcomes), "sprout-lesson-1-one-prompt-three-directives")
                except ValueError:
                    st.info("No complete answer yet: run the three answers again.")
            else:
                st.info("Press **Run the three answers**: the loaded model answers the same prompt three times, each "
                        "under another directive, and Sprout measures what each answer costs.")
        elif key == "grids":
            e = answer_energy()
            if e is None:
                prof = ui.reference_profile()
                i0 = list(prof.levels).index("L0")
                w = prof.default_weights()
                e = (float(w @ prof.e_kwh[:, i0]) * 3.6e6, float(w @ prof.t_s[:, i0]),
                     "no answer from step 1 yet: the Sprout paper's mean L0 request on Llama-2-13B, reference:sprout-paper")
            show(L.grids_step(e[0], e[1], lesson_traces(grid.sources_signature()), source=f"Energy: {e[2]}"), "sprout-lesson-2-grids-and-hours")
        else:
            traces = lesson_traces(grid.sources_signature())
            zones = [t.zone for t in traces]
            c1, c2, c3 = st.columns(3)
            zone = c1.selectbox("Grid zone", zones, index=zones.index(defaults.default_zone()) if defaults.default_zone() in zones else 0, key="lesson.zone",
                                format_func=lambda z: f"{z} — {next(t.zone_name for t in traces if t.zone == z)}")
            trace = next(t for t in traces if t.zone == zone)
            prof = ui.reference_profile()
            if key == "optimizer":
                show(L.optimizer_step(prof, trace), "sprout-lesson-3-optimizer-choice")
            else:
                month = c2.selectbox("Month", list(range(1, 13)), index=5, key="lesson.month",
                                     format_func=lambda m: f"{calendar.month_name[m]} {trace.year}")
                rph = c3.number_input("Requests per hour", 1, 10_000_000, 1000, 100, key="lesson.rph")
                show(L.month_step(prof, trace, int(month), requests_per_hour=float(rph)), "sprout-lesson-4-a-month")
    except (SproutError, profiles.ProfileError) as exc:
        st.error(f"This step needs data that is not here: {ui.error_text(exc)}")
    ui.page_link(deeper, label=f"Go deeper: {deeper_label} →")

b1, b2, _ = st.columns([1, 1, 4])
b1.button("← Back", key="lesson.back", on_click=go, args=(-1,), disabled=generating or k == 0)
b2.button("Next →", key="lesson.next", on_click=go, args=(1,), disabled=generating or k == len(TITLES) - 1, type="primary")
