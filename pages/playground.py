"""Playground: one prompt under each directive level, answers streamed side by side."""
import pandas as pd
import streamlit as st

from sprout_core import ui
from sprout_core.generation import MAX_PROMPT_CHARS, GenerationParams, PromptError, stream_generate

RESULTS_KEY = "pg.results"

st.title("💬 Playground")
st.caption("Send one prompt under each directive level. Answers are generated one after another on the same model "
           "and stream into their own column.")

lm = ui.get_model()
if lm is None:
    st.info("Pick a model that loads on the Home page.")
    st.stop()
dset = ui.directive_set(lm)

prompt = st.text_area("Prompt", key="pg.prompt", height=120, max_chars=MAX_PROMPT_CHARS,
                      placeholder="e.g. Why is the sky blue?")
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

run = st.button("Run", type="primary", key="pg.run")

if run:
    if not prompt.strip():
        st.warning("Type a prompt first — nothing was run.")
    elif not levels:
        st.warning("Pick at least one directive level.")
    else:
        params = GenerationParams(max_new_tokens=int(max_new), do_sample=bool(sample), seed=int(seed))
        directives = dset.select(levels)
        try:
            streams = [stream_generate(lm, prompt, d, params) for d in directives]  # validates the prompt first
        except PromptError as exc:
            st.error(str(exc))
            streams = []
        if streams:
            results = []
            cols = st.columns(len(streams))
            for col, d, stream in zip(cols, directives, streams):
                col.markdown(f"**{d.level}** · {d.text or '_no directive_'}")
                body, status = col.empty(), col.empty()
                text = ""
                for chunk in stream:
                    text += chunk.text
                    body.markdown(text + " ▌")
                    rate = chunk.new_tokens / chunk.elapsed_s if chunk.elapsed_s > 0 else 0.0
                    status.caption(f"{chunk.new_tokens} tokens · {rate:.1f} tokens/s")
                r = stream.result
                body.markdown(r.text or "_(empty answer)_")
                status.caption(f"{r.new_tokens} tokens · {r.total_s:.1f} s · finish: {r.finish_reason}")
                if r.error:
                    col.error(f"Generation failed: {r.error}")
                if r.max_new_tokens_capped:
                    col.warning(f"Max new tokens was cut to {r.max_new_tokens} to fit the model's context.")
                results.append(r)
            st.session_state[RESULTS_KEY] = {"prompt": prompt, "results": results}
            st.rerun()

saved = st.session_state.get(RESULTS_KEY)
if saved:
    results = saved["results"]
    st.subheader("Answers")
    st.caption(f"Prompt: {saved['prompt'][:300]}")
    cols = st.columns(len(results))
    for col, r in zip(cols, results):
        col.markdown(f"**{r.level}** · {r.directive or '_no directive_'}")
        col.markdown(r.text or "_(empty answer)_")
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
