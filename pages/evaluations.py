"""Evaluations: which directive level's answers are best, by which judge — own runs and the paper's.

Thin page: widgets → sprout_core.evaluate (results, runner, judges) → tables and Plotly charts.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from sprout_core import access, refdata, style, ui
from sprout_core.errors import SproutError
from sprout_core.evaluate import results as R
from sprout_core.evaluate.judges import WEAK_JUDGE_NOTE
from sprout_core.evaluate.prompts import PROMPT_SETS, parse_upload, save_upload
from sprout_core.paths import MissingDataError
from sprout_core.ui import ensure_navigation
from sprout_core.views import evaluations as V

ensure_navigation()
HANDOFF_KEY = "sprout.q_handoff"
JOB_KEY = "eval.job"
SOURCES = {"own": "Own runs (this machine + shipped)", "paper": "Sprout paper (Llama-2-13B, GPT-4 judge)"}

st.title("Evaluations")
st.caption("How good is each directive level's answer? A judge sees the answers of every level to the same prompt "
           "and picks the best; a level's quality q is the share of prompts it won. Browse this machine's runs, the "
           "shipped evaluation, or the Sprout paper's 12,000 GPT-4 verdicts, and hand q to the Optimizer.")


@st.cache_data(show_spinner="Reading the Sprout paper's 12,000 judged answer triples…", max_entries=2)
def paper_tables(sig: float, texts: bool) -> R.EvalTables:
    from sprout_core.evaluate.reference import paper_tables as load

    return load()


def paper_signature() -> float:
    from sprout_core.evaluate.reference import _cache_path

    p = _cache_path()
    return p.stat().st_mtime if p.exists() else 0.0


@st.cache_data(show_spinner=False, max_entries=4)
def shipped(sig: tuple) -> R.EvalTables:  # sig is hashed (a leading _ would exclude it from the key)
    return R.shipped_tables()


def own_tables() -> R.EvalTables:
    sig = tuple((str(p), p.stat().st_mtime) for p in R.shipped_runs())
    t = shipped(sig)
    with ui.error_boundary("Could not read this machine's evaluation runs (the shipped results are shown): "):
        t = t.concat(R.own_tables(visitor=ui.visitor_id()))  # a broken database must not hide the shipped results
    return t



# ---------------------------------------------------------------- start a run
def run_panel() -> None:
    job = st.session_state.get(JOB_KEY)
    with st.expander("Start an evaluation run", expanded=False):
        st.caption("Answers N prompts under every level with the loaded model, records tokens, time and energy, "
                   "stores each answer at once (a restart of the same settings resumes) and judges each prompt.")
        c1, c2, c3 = st.columns(3)
        names = list(PROMPT_SETS) + ["upload a file…"]
        set_name = c1.selectbox("Prompt set", names, key="ev.run.set")
        n = c2.number_input("Prompts (N)", 1, access.SHARED_MAX_PROMPTS if ui.shared() else 2000, 12, key="ev.run.n",
                            help=f"At most {access.SHARED_MAX_PROMPTS} on a shared Sprout (one run must not hold the "
                                 "model for everyone for hours)" if ui.shared() else None)
        seed = c3.number_input("Seed", 0, 10_000, 0, key="ev.run.seed")
        prompt_source = set_name
        if set_name == "upload a file…":
            up = st.file_uploader("JSONL or CSV with a 'prompt' column (optional 'reference', 'category')",
                                  type=["jsonl", "csv", "json"], key="ev.run.upload")
            prompt_source = None
            if up is not None:
                ps = parse_upload(up.getvalue(), up.name)
                if ps.errors:
                    st.warning(f"{len(ps.errors)} row(s) skipped, {len(ps.items)} kept:")
                    st.dataframe(pd.DataFrame([{"row": e.row, "reason": e.reason} for e in ps.errors]), hide_index=True)
                if ps.items:
                    try:
                        prompt_source = str(save_upload(up.name, ps.items, ui.visitor_folder("uploads")))
                    except OSError as exc:
                        st.error(f"Could not keep the uploaded prompts on the server ({ui.plain(exc.strerror or exc)}); "
                                 "nothing was started.")
                    else:
                        cats = ", ".join(f"{ui.safe_md(k)}: {v}" for k, v in ps.categories().items())
                        st.success(f"{len(ps.items)} prompts ready ({cats}).")
        c1, c2, c3 = st.columns(3)
        sampling = c1.radio("Sampling", ["stratified", "representative"], key="ev.run.sampling", horizontal=True,
                            help="stratified: even over categories; representative: prompts nearest the centres of "
                                 "N clusters of their all-MiniLM-L6-v2 embeddings")
        judge_name = c2.selectbox("Judge", ["reference", "llm (embedded model)", "llm (local model folder)",
                                            "api (OpenAI-compatible)", "none"], key="ev.run.judge")
        max_new = c3.number_input("Max new tokens", 8, 2048, 256, key="ev.run.max_new")
        second = False
        if judge_name.startswith("llm") or judge_name.startswith("api"):
            second = st.checkbox("Judge twice, in two orders", value=True, key="ev.run.second",
                                 help="Each comparison is shown in two orders (twice the judging time and energy, "
                                      "both counted). A pair that disagrees counts as a tie; the share that flips "
                                      "is the judge's flip rate, shown below.")
        if judge_name == "llm (embedded model)":
            st.warning(f"The embedded 135M model runs the LLM judge only mechanically: {WEAK_JUDGE_NOTE}.")
        judge_folder = ""
        if judge_name == "llm (local model folder)":
            if ui.shared():  # class mode: the operator's models only, by name (no path typed)
                folders = [c for c in access.allowed_models() if c.spec != access.EMBEDDED]
                if not folders:
                    st.info("This Sprout is shared and the operator has listed no model folders for judges "
                            f"({access.MODELS_ENV} / {access.MODEL_ROOT_ENV}).")
                else:
                    k = st.selectbox("Judge model (set up by the operator)", range(len(folders)),
                                     format_func=lambda i: folders[i].label, key="ev.run.judge_pick")
                    judge_folder = folders[k].spec
            else:
                judge_folder = st.text_input("Judge model folder", key="ev.run.judge_folder",
                                             placeholder="/models/Llama-2-13b-chat-hf",
                                             help="A local Hugging Face chat model (offline; CUDA when available; "
                                                  "safetensors weights)")
        api_model = ""
        if judge_name.startswith("api"):
            st.caption("Set SPROUT_JUDGE_BASE_URL (e.g. http://127.0.0.1:8000/v1) and, if needed, the key in "
                       "SPROUT_JUDGE_API_KEY before starting Sprout.")
            api_model = st.text_input("Judge model name", key="ev.run.api_model")
        running = job is not None and job.running
        if st.button("Start evaluation", type="primary", disabled=running or prompt_source is None, key="ev.run.start"):
            start_job(prompt_source, int(n), int(seed), sampling, judge_name, api_model, int(max_new), second,
                      judge_folder)
    if st.session_state.get(JOB_KEY) is not None:
        progress_panel()


def start_job(prompt_source, n, seed, sampling, judge_name, api_model, max_new, second, judge_folder="") -> None:
    try:
        judge, prompts = V.plan_run(prompt_source, n, seed, sampling, judge_name, api_model, second, judge_folder,
                                    shared=ui.shared())
    except SproutError as exc:
        st.error(f"Cannot start: {ui.error_text(exc)}")
        return
    lm = ui.get_model()
    if lm is None:
        return
    st.session_state[JOB_KEY] = V.start_run(lm, ui.directive_set(lm), prompt_source, prompts, judge, n, seed, sampling,
                                            max_new, second)


@st.fragment(run_every=2.0)
def progress_panel() -> None:
    job = st.session_state.get(JOB_KEY)
    if job is None:
        return
    p = job.progress
    eta = f", about {p.eta_s / 60:.1f} min left" if p.eta_s is not None and not p.finished else ""
    st.progress(p.fraction, text=f"{p.done}/{p.total} answers ({p.skipped} already stored), {p.judged} prompts judged"
                                 f"{eta}" + (f" · {p.current}" if p.current else ""))
    live = None
    if p.run_id is not None and p.judged and job.judge is not None:
        with ui.error_boundary("Live win shares unavailable for now: "):  # e.g. the database is busy
            live = R.run_summary(p.run_id)["win_shares"].get(job.judge.name)
        if live:
            shares = ", ".join(f"{lv} {v * 100:.0f}%" for lv, v in live["share"].items() if v is not None)
            st.caption(f"So far ({job.judge.name}, {live['n_valid']} valid verdicts, {live['n_invalid']} invalid): {shares}")
    if p.failed or p.unjudgeable:
        st.warning(f"{p.failed:,} answer(s) could not be generated (stored as errors, e.g. a prompt longer than the "
                   f"model's context); {p.unjudgeable:,} prompt(s) are not judged because of them.")
    if p.others:
        st.info(f"Another process is working on this run too ({p.others:,} answer(s) or judgings in progress there); "
                "none is generated twice.")
    if p.error:
        st.error(f"The run stopped: {ui.error_text(p.error)} Answers stored so far are kept; start it again to resume.")
    elif p.finished:
        st.success(f"Run finished: {p.done:,} answers, {p.judged:,} prompts judged, {p.invalid:,} invalid verdicts.")
    elif p.cancelled:
        st.info("Run stopped. Start the same settings again to resume.")
    c1, c2 = st.columns(2)
    if job.running and c1.button("Stop after the answer in flight", key="ev.run.stop"):
        job.cancel()
    if c2.button("Refresh results", key="ev.run.refresh"):
        st.rerun()
    if not job.running and not st.session_state.get("ev.run.final_refresh"):
        st.session_state["ev.run.final_refresh"] = True
        st.rerun()
    if job.running:
        st.session_state["ev.run.final_refresh"] = False


# ---------------------------------------------------------------- source & filters
source = st.radio("Source", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="ev.source")
paper_texts = source != "paper" or refdata.texts_available()  # False: verdicts and counts only (texts not shipped)
if source == "own":
    run_panel()
    tables = own_tables()
    if tables.prompts.empty:
        st.info("No evaluation runs yet. Start one above, or run `python -m sprout_core evaluate --prompts starter "
                "--n 60 --judge reference` (see docs/evaluation.md).")
        st.stop()
else:
    try:
        tables = paper_tables(paper_signature(), paper_texts)
    except MissingDataError as exc:
        st.error(f"The Sprout paper's data is not available: {ui.error_text(exc)}")
        st.stop()
    if not paper_texts:
        st.info("Showing the paper's GPT-4 verdicts and counts, with each answer's measured energy (shipped with "
                "Sprout). The prompt and answer texts are not shipped: their datasets are under non-commercial "
                f"licences. To read them side by side, put the artifact's `prompts.csv` and `responses.jsonl` into "
                f"`{ui.plain(ui.visitor_message(refdata.folder()))}` (README, *Public data*).")
    elif "reference" not in R.judges_of(tables):
        st.caption("Our reference judge's verdicts on these triples appear here after "
                   "`python -m sprout_core agreement --source llama2-13b-a100 --judge reference` has run once.")

levels = R.levels_of(tables)
judges = R.judges_of(tables)
f1, f2, f3 = st.columns([2, 2, 2])
runs_all = R.ordered_runs(tables)
ALL_RUNS = "all runs (pooled)"
run_pick = f1.selectbox("Run", runs_all + [ALL_RUNS] if len(runs_all) > 1 else runs_all, key="ev.run",
                        help="Newest run first. Pooling runs counts a prompt once per run that judged it.")
runs = [] if run_pick == ALL_RUNS else [run_pick]
tasks_all = sorted(tables.prompts["task"].unique())
tasks = f2.multiselect("Task", tasks_all, default=[], key="ev.tasks", placeholder="all tasks")
judge = f3.selectbox("Judge", judges, key="ev.judge") if judges else None
g1, g2 = st.columns([1, 3])
winner = g1.selectbox("Winning level", ["any"] + levels, key="ev.winner")
text = g2.text_input("Search prompts and answers", key="ev.text", placeholder="words in a prompt or an answer")

sel = R.filter_tables(tables, runs, tasks, judge, None if winner == "any" else winner, text)
if sel.prompts.empty:
    st.info("No prompts match these filters.")
    st.stop()
if judge and judge.startswith("llm"):
    st.warning(f"Judge {judge}: {WEAK_JUDGE_NOTE}.")

# ---------------------------------------------------------------- win shares
st.subheader("Win shares per task and level")
if judge:
    st.info(V.judge_explanation(judge))
shares = R.shares_frame(sel, levels)
sj = shares[shares["judge"] == judge] if judge else shares.iloc[0:0]
if sj.empty or sj["share"].isna().all():
    st.info("No valid verdicts of this judge in the selection.")
else:
    allrow = sj[sj["task"] == "all"]
    counts = V.judge_counts(sel, judge)
    st.caption(f"Judge: **{ui.safe_md(judge)}** · all tasks in the selection pooled · length-controlled share, "
               "with the raw share below it")
    row = st.container(horizontal=True, gap="small")  # fixed-width metrics wrap at 1000 px instead of cutting notes
    for r in allrow.itertuples():
        value, note = V.share_metric(r)
        ui.note_metric(f"q {r.level}", value, note, container=row, width=210,
                       help="Share of the judged prompts this level won at equal answer length (length-controlled), "
                            "with its 95 % interval (delta method); raw = the plain share of wins")
    ui.note_metric("Prompts judged", f"{counts.judged}", f"of {counts.prompts} prompts", container=row, width=210,
                   help=f"{counts.invalid} invalid verdict(s) and {counts.no_reference} prompt(s) without a reference "
                        f"are excluded; {counts.not_judged} not judged yet")
    st.markdown(counts.sentence())
    ui.chart(V.share_figure(sj[sj["task"] != "all"] if sj["task"].nunique() > 1 else sj, levels),
             key="ev.shares_chart", filename="sprout-win-shares")
    st.caption("Bars: length-controlled shares with 95 % intervals (delta method over prompts); diamonds: raw shares. "
               "Identical answers share the credit. Invalid verdicts are excluded and counted. " + ui.PNG_HINT)
    handoff_label = f"{SOURCES[source].split(' (')[0]}: {', '.join(tasks) or 'all tasks'}" + (f", '{text}'" if text else "")
    if st.button("Use this q in the Optimizer →", type="primary", key="ev.handoff"):
        try:
            st.session_state[HANDOFF_KEY] = R.q_handoff(sel, judge, levels, handoff_label)
        except SproutError as exc:
            st.error(ui.error_text(exc))
        else:
            st.switch_page("pages/optimizer.py")

    # ------------------------------------------------------------ judge bias
    st.subheader("Judge bias")
    bias = V.judge_bias(R.quality(sel, judge, levels=levels))
    for sentence in bias.sentences:
        st.markdown(sentence)
    st.table(V.bias_display(bias.table))  # a small static table: every cell wraps in full
    st.caption("Length effect: the conditional-logit coefficient of log(answer length in whitespace words) ± its "
               "standard error; the odds of winning change by the factor shown when an answer is twice as long. "
               "Position effect: odds of the 2nd/3rd answer shown against the 1st (only where the order is stored). "
               "Levels: raw → controlled share [95 % interval]. See docs/evaluation.md.")

# ---------------------------------------------------------------- table
st.subheader("Prompts")
table = R.prompt_table(sel, levels)
st.caption(f"{style.fmt_count(len(table), 'prompt')}. Energy per answer (mJ, J, kJ or Wh) with its method "
           "(reference:sprout-paper = the paper's GPU measurement on an A100; estimated:cpu-tdp = CPU-time × TDP "
           "estimate); n/a = unknown, never 0.")
show = table.drop(columns=["reference"], errors="ignore").copy()
show["prompt"] = show["prompt"].str.slice(0, 160)
# energies through the one formatter ("1.03 kJ", "n/a"), never a raw "1031.9252" J
show = show.assign(**{c: [style.fmt_quantity(v, "J") for v in show[c]] for c in show.columns if c.endswith(" energy (J)")})
st.dataframe(show, hide_index=True, width="stretch", height=320, column_order=V.prompt_columns(show), placeholder="n/a",
             column_config={"prompt": st.column_config.TextColumn(width="large")}
             | {c: st.column_config.TextColumn(c.replace(" (J)", "")) for c in show.columns if c.endswith(" energy (J)")})
st.download_button("Download CSV", table.to_csv(index=False).encode("utf-8"), file_name="sprout_evaluations.csv",
                   mime="text/csv", key="ev.csv")

# ---------------------------------------------------------------- detail
st.subheader("Detail")
opts = list(zip(table["run"], table["prompt_id"]))[:2000]
choice = st.selectbox("Prompt", range(len(opts)), key=V.detail_key(source, opts),  # a new list: a fresh widget
                      format_func=lambda i: f"{opts[i][1]} · {table['prompt'].iloc[i][:90]}")
if choice is not None:
    run_name, pid = opts[choice]
    prow = sel.prompts[(sel.prompts["run"] == run_name) & (sel.prompts["prompt_id"] == pid)].iloc[0]
    st.markdown(f"**Task:** {ui.safe_md(prow['task'])} · **run:** {ui.safe_md(run_name)}")
    if paper_texts:
        with st.container(border=True):
            st.caption("Prompt")
            ui.show_text(str(prow["prompt"]), empty="_(empty prompt)_")
    else:
        st.caption("Prompt and answer texts are not shipped with Sprout (see the note above); verdicts and energy are.")
    if prow["reference"] is not None and str(prow["reference"]).strip() and str(prow["reference"]) != "nan":
        st.caption(f"Reference answer: {ui.safe_md(str(prow['reference'])[:600])}")
    ans = sel.answers[(sel.answers["run"] == run_name) & (sel.answers["prompt_id"] == pid)].set_index("level")
    wins = V.winners(sel, run_name, pid)
    if judge in wins:
        st.caption(f"**best** marks the answer **{judge}** picked" + ("" if wins[judge] else " — its verdict here is invalid"))
    cols = st.columns(max(1, len(levels)))
    for k, (c, lv) in enumerate(zip(cols, levels)):
        with c:
            if lv in ans.index:
                a = ans.loc[lv]
                note = V.winner_note(lv, wins, judge)
                ui.level_heading(lv, None, position=k, extra=note)
                tok = "n/a" if pd.isna(a["new_tokens"]) else style.fmt_count(int(a['new_tokens']), "token")
                sec = "n/a" if pd.isna(a["total_s"]) else style.fmt_seconds(float(a["total_s"]))
                en = ui.fmt_energy(None if pd.isna(a["energy_j"]) else float(a["energy_j"]))
                st.caption(f"{tok} · {sec} · {en} ({a['energy_method']})")
                if paper_texts:
                    with st.container(height=280, border=True, key=f"ev.detail.ans.{k}"):
                        ui.show_text(str(a["text"]), empty="_(empty answer)_")
            else:
                ui.level_heading(lv, None, position=k)
                st.caption("no answer stored")
    vs = sel.verdicts[(sel.verdicts["run"] == run_name) & (sel.verdicts["prompt_id"] == pid)]
    if vs.empty:
        st.info("Not judged yet.")
    else:
        st.dataframe(vs[["judge", "pass_no", "winner", "valid", "order"]].rename(
            columns={"order": "order the judge saw"}), hide_index=True, width="stretch")
        for vr in vs.itertuples():  # the reply in full, wrapped (a table cell cuts it)
            with st.expander(f"Reply of {ui.plain(vr.judge)} (pass {vr.pass_no})", expanded=len(vs) == 1):
                ui.show_text(str(vr.raw), empty="_(no reply stored)_")
    run_id = R.own_run_id(run_name)
    if run_id is not None and len(ans) > 1:
        h1, h2 = st.columns([3, 1])
        vote = h1.radio("Your verdict: which answer is best?", [lv for lv in levels if lv in ans.index], index=None,
                        horizontal=True, key=f"ev.vote.{run_id}.{pid}",
                        help="Stored as judge 'human' on this run, so it can be compared with the other judges.")
        if h2.button("Save my verdict", key="ev.vote.save", disabled=vote is None):
            try:
                added = R.add_human_verdict(run_id, pid, vote, [lv for lv in levels if lv in ans.index])
            except Exception as exc:  # noqa: BLE001 - a failed save keeps the page usable
                ui.show_error(exc, "Verdict not saved: ")
            else:
                if added:
                    st.success(f"Saved: {vote} (judge 'human').")
                    st.rerun()
                else:
                    st.info("You already gave a verdict on this prompt; the first one is kept.")

# ---------------------------------------------------------------- agreement
st.subheader("Judge agreement")
ag = R.agreement_frame(sel)
if len(judges) < 2 or ag.empty:
    st.info("Agreement needs at least two judges on the same prompts (e.g. reference and an LLM judge, or a "
            "Playground vote next to a run).")
else:
    names = sorted(set(ag["judge_a"]))
    pct = ag.pivot(index="judge_a", columns="judge_b", values="percent").reindex(index=names, columns=names)
    kap = ag.pivot(index="judge_a", columns="judge_b", values="kappa").reindex(index=names, columns=names)
    nn = ag.pivot(index="judge_a", columns="judge_b", values="n").reindex(index=names, columns=names)
    txt = [[("n/a" if pd.isna(pct.iloc[i, j]) else f"{pct.iloc[i, j]:.1f}%") +
            ("" if pd.isna(kap.iloc[i, j]) else f"<br>κ {kap.iloc[i, j]:.2f}") + f"<br>n {int(nn.iloc[i, j])}"
            for j in range(len(names))] for i in range(len(names))]
    fig = go.Figure(go.Heatmap(z=pct.values, x=names, y=names, text=txt, texttemplate="%{text}", zmin=0, zmax=100,
                               colorscale="Greens", colorbar=dict(title="% agree")))
    fig.update_layout(height=320, margin=dict(t=20, b=10))
    ui.chart(fig, key="ev.agreement_chart", filename="sprout-judge-agreement")
    st.caption("Share of prompts (judged validly by both) on which two judges picked the same level, and Cohen's κ "
               "(0 = chance, 1 = perfect). Three levels: chance agreement is about 33%.")
pv = V.people_vs_judges(tables, ui.visitor_id())
if not pv.empty:
    st.markdown("**People, blind, against the judges.** Votes from the Playground's blind comparison, on prompts "
                "a judge also judged: *comparable* = the judge's pick was one of the two answers shown and the "
                "person picked one (a tie or *both bad* names no winner).")
    st.dataframe(V.people_display(pv), hide_index=True)
pc = R.position_consistency_frame(sel)
if not pc.empty:
    st.markdown("**Judging twice: flip rate.** Each LLM or API judge saw every comparison in two orders. A prompt "
                "whose winner changed with the order *flipped*; it counts as a tie (credit split) in the shares.")
    st.dataframe(V.flip_display(pc), hide_index=True)
