"""Home: what Sprout does, the loaded model, and the model picker."""
import streamlit as st

from sprout_core import ui
from sprout_core.models import EMBEDDED_SPEC, configure_threads, default_threads
from sprout_core.paths import public_data_status

ui.ensure_navigation()

st.title("🌱 Sprout")
st.markdown(
    """
**See, measure and cut the carbon cost of running a large language model.**

A *generation directive* — an instruction such as "Always answer briefly" attached to a prompt —
makes a model answer with fewer tokens, so each request takes less energy and emits less carbon.
Sprout's *directive optimizer* (a linear program) decides, hour by hour from the grid's carbon
intensity, which share of requests gets which directive level, while a *quality constraint*,
learned offline by an LLM judge at clean hours of the grid, keeps answers good enough
(after Li et al., *Toward Sustainable GenAI using Generation Directives for Carbon-Friendly LLM Inference*, 2024).

- **Playground** — send a prompt under each directive and watch the answers stream.
- **Optimizer** — slide carbon intensity and a quality threshold, see the decision.
- **Evaluations** — browse offline judge results.
- **What-if** — replay real grid traces and compare strategies.
"""
)

st.subheader("Model")
lm = ui.get_model()
if lm is not None:
    info = lm.info
    c = st.columns(6)
    c[0].metric("Model", info.name, help=info.path)
    c[1].metric("Parameters", f"{info.params_m:,.0f} M")
    c[2].metric("Device", info.device if not info.gpu_name else f"{info.device} ({info.gpu_name})")
    c[3].metric("Dtype", info.dtype)
    c[4].metric("Torch threads", f"{info.threads}")
    c[5].metric("Load time", f"{info.load_s:.1f} s", help="Converted from GGUF on this load" if info.converted else "Read from the safetensors cache")
    st.caption(
        f"Context: {info.context_len:,} tokens · directives go in the **{info.placement}** "
        f"{'message' if info.placement == 'system' else 'turn'} · directive set `{info.directive_set}` · folder `{info.path}`"
    )

with st.expander("Choose a model", expanded=lm is None):
    st.markdown(
        "Use the embedded SmolLM2-135M-Instruct (CPU, no download), or a local Hugging Face causal-LM "
        "folder such as `Llama-2-7b-chat-hf` (CUDA in bf16/fp16 when available). Nothing is fetched from the web. "
        "You can also start the app with `SPROUT_MODEL=/path/to/folder`."
    )
    choice = st.radio("Model source", ["Embedded SmolLM2-135M-Instruct", "Local folder"], horizontal=True,
                      index=0 if ui.model_spec() == EMBEDDED_SPEC else 1)
    folder = ""
    if choice == "Local folder":
        folder = st.text_input("Model folder", value="" if ui.model_spec() == EMBEDDED_SPEC else ui.model_spec(),
                               placeholder="/models/Llama-2-7b-chat-hf")
    cols = st.columns(2)
    device = cols[0].selectbox("Device", ["auto", "cpu", "cuda"], help="auto: CUDA when available, else CPU")
    dtype = cols[1].selectbox("Dtype", ["auto", "float32", "bfloat16", "float16"], help="auto: bf16/fp16 on CUDA, float32 on CPU")
    if st.button("Load model"):
        spec = EMBEDDED_SPEC if choice.startswith("Embedded") else folder
        if choice == "Local folder" and not folder.strip():
            st.warning("Type the path of a model folder first.")
        else:
            with st.spinner("Loading…"):
                ok, msg = ui.switch_model(spec, None if device == "auto" else device, None if dtype == "auto" else dtype)
            (st.success if ok else st.error)(msg + ("" if ok else " The previous model stays loaded."))
            if ok:
                st.rerun()

with st.expander("Torch threads"):
    st.caption(f"Default here: {default_threads()} (one thread on machines with 2 cores or fewer; "
               "set SPROUT_TORCH_THREADS to change the default). This applies to the whole app process.")
    import torch

    n = st.number_input("Threads", min_value=1, max_value=64, value=torch.get_num_threads(), step=1,
                        help="Currently in use by this app process")
    if st.button("Apply threads"):
        st.success(f"Torch now uses {configure_threads(int(n))} thread(s).")

st.subheader("Data")
for ds in public_data_status():
    if ds.present:
        st.markdown(f"✅ **{ds.name}** — {ds.purpose}")
    else:
        st.markdown(f"⚠️ **{ds.name}** is missing at `{ds.path}` — {ds.purpose}. "
                    "See the README, *Public data*, for where to get it; the rest of the app works without it.")
