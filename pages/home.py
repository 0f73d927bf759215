"""Home: what Sprout does, the loaded model, and the model picker."""
import streamlit as st

from sprout_core import access, backends, style, ui
from sprout_core.errors import SproutError
from sprout_core.models import EMBEDDED_SPEC, configure_threads, default_threads
from sprout_core.paths import public_data_status
from sprout_core.serving.client import ENV_KEY, ServerConfig, parse_indices
from sprout_core.serving.llamacpp import INSTALL_HINT, llama_cpp_available
from sprout_core.views import home as H

ui.ensure_navigation()
METRIC_PX = 190  # one metric box (px): five fit in a row at 1400 px, they wrap two rows at 1000 px

st.title("Sprout")
# Every claim below is the README's, word for word (sprout_core/views/home.py; tests/test_home_readme.py).
st.markdown(f"**{H.TAGLINE}**\n\n{H.INTRO}\n\n"
            + "\n".join(f"- **{name}** — {what}" for name, what in H.PAGES.items() if name != "Home"))
ui.page_link("pages/lesson.py", label="Start the guided lesson", icon=":material/school:")

# ------------------------------------------------------------------ the loaded model
st.subheader("Model")
SHARED = ui.shared()
lm = ui.get_model()
if lm is not None and lm.info.kind == "server":  # a serving engine (issue 12)
    meter = backends.meter_for(lm)
    c = st.columns(4)
    c[0].metric("Model (served)", lm.info.name, help=f"Served by {lm.info.path}")
    c[1].metric("Backend", "server", help="An OpenAI-compatible serving engine; answers stream from it")
    c[2].metric("Server", lm.cfg.address, help=lm.info.path)
    c[3].metric("Energy", meter.method if meter.available else "n/a", help=meter.describe())
    st.caption(
        f"Directives go in the **{lm.info.placement}** {'message' if lm.info.placement == 'system' else 'turn'} "
        f"(matched by the model name) · directive set `{lm.info.directive_set}` · context {style.fmt_count(lm.info.context_len, 'token')} · "
        "no app-wide queue: sessions stream at once and the server schedules them · energy: "
        + ("n/a (remote server) — a server on another machine is not metered from here, never guessed."
           if "remote-server" in meter.base_flags else f"{meter.describe()}.")
    )
elif lm is not None:
    info = lm.info
    # the whole name, never cut; in class mode the server's folder is not shown to visitors
    st.markdown(f"**{ui.plain(info.name)}**" + ("" if SHARED else f" · `{ui.plain(info.path)}`"))
    row = st.container(horizontal=True, gap="small")  # fixed-width metrics wrap at 1000 px instead of cutting values
    ui.note_metric("Parameters", f"{info.params_m:,.0f} M" if info.params_m is not None else "n/a", container=row,
                   width=METRIC_PX)
    ui.note_metric("Device", info.device, info.gpu_name or None, container=row, width=METRIC_PX)
    ui.note_metric("Dtype", info.dtype, container=row, width=METRIC_PX)
    ui.note_metric("llama.cpp threads" if getattr(lm, "backend", "") == "llama.cpp" else "Torch threads",
                   f"{info.threads}", container=row, width=METRIC_PX)
    ui.note_metric("Load time", style.fmt_seconds(info.load_s),
                   "the GGUF file, read as is" if getattr(lm, "backend", "") == "llama.cpp"
                   else "converted from GGUF" if info.converted else "safetensors cache", container=row, width=METRIC_PX)
    st.caption(
        f"Backend: **{ui.plain(lm.backend)}** in this process — {ui.plain(ui.backend_choice().why or 'picked on Home')}."
    )
    st.caption(
        f"Context: {style.fmt_count(info.context_len, 'token')} · directives go in the **{info.placement}** "
        f"{'message' if info.placement == 'system' else 'turn'} · directive set `{info.directive_set}`."
    )

# ------------------------------------------------------------------ choose a model
with st.expander("Choose a model", expanded=lm is None):
    if SHARED:
        # Shared (class) mode: only the operator's models, by name; no free-text path (README: "Serving a class").
        choices = access.allowed_models()
        specs = [c.spec for c in choices]
        current = ui.model_spec()
        pick = st.selectbox("Model (set up by the operator)", range(len(choices)), format_func=lambda i: choices[i].label,
                            index=specs.index(current) if current in specs else 0, key="home.shared_model")
        st.caption("This Sprout is shared: the operator chose these models; loading one does not unload anyone else's.")
        if st.button("Load model"):
            with st.spinner("Loading…"):
                ok, msg = ui.switch_model(choices[pick].spec)
            (st.success if ok else st.error)(msg + ("" if ok else " The previous model stays loaded."))
            if ok:
                st.rerun()
    else:
        st.markdown(
            "Use the embedded SmolLM2-135M-Instruct (CPU, no download), or a local Hugging Face causal-LM "
            "folder such as `Llama-2-7b-chat-hf` (CUDA in bf16/fp16 when available; safetensors weights). Nothing is "
            "fetched from the web. You can also start the app with `SPROUT_MODEL=/path/to/folder`."
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

# --- Backend: in process (transformers / llama.cpp) or a serving engine (issue 12) ---------------------------
with st.expander("Backend: in process, or a serving engine (vLLM, llama.cpp, Ollama …)", expanded=False):
    current = ui.backend_choice()
    kinds = {"transformers": "In process · transformers (fallback; any local model)",
             "llama.cpp": "In process · llama.cpp (default when installed; embedded model, fast on CPU)",
             "server": "Serving engine (OpenAI-compatible API)"}
    kind = st.radio("Backend", list(kinds), format_func=kinds.get, index=list(kinds).index(current.kind),
                    horizontal=True, key="home.backend")
    if kind == "transformers":
        st.caption("The model chosen above runs in this app's process, one answer at a time for all sessions.")
        if current.kind != "transformers" and st.button("Use transformers", key="home.backend_transformers"):
            ok, msg = ui.switch_backend(backends.BackendChoice(model=ui.model_spec()))
            (st.success if ok else st.error)(msg)
            if ok:
                st.rerun()
    elif kind == "llama.cpp":
        st.caption("The embedded GGUF through llama.cpp in this process, with the same answer format. "
                   + H.LLAMA_CPP_CLAIM + ". Energy: this process's CPU time (see docs/energy.md).")
        if not llama_cpp_available():
            st.info(INSTALL_HINT)
        elif current.kind != "llama.cpp" and st.button("Use llama.cpp", key="home.backend_llamacpp"):
            with st.spinner("Loading the GGUF with llama.cpp…"):
                ok, msg = ui.switch_backend(backends.BackendChoice("llama.cpp"))
            (st.success if ok else st.error)(msg)
            if ok:
                st.rerun()
    elif SHARED:  # a visitor never types a URL or names an environment variable (README: "Serving a class")
        operator = backends.default_choice().server
        st.caption("This Sprout is shared: the serving engine is the operator's setting (SPROUT_SERVER_URL when the "
                   "server starts)." + ("" if operator else " The operator has set none."))
        if operator and current.kind != "server" and st.button("Use the operator's serving engine",
                                                                key="home.server_operator"):
            ok, msg = ui.switch_backend(backends.BackendChoice("server", server=operator))
            (st.success if ok else st.error)(msg)
            if ok:
                st.rerun()
    else:
        cur = current.server
        st.caption("Any OpenAI-compatible `/v1/chat/completions` endpoint with streaming: `vllm serve`, llama.cpp's "
                   "server (`python -m sprout_core serve` starts one for the embedded model), Ollama, TGI, SGLang. "
                   "Sessions stream at the same time; the server batches them.")
        sc = st.columns([3, 2])
        url = sc[0].text_input("Server URL", value=cur.base_url if cur else "", placeholder="http://127.0.0.1:8000/v1",
                               key="home.server_url")
        model = sc[1].text_input("Model name", value=(cur.model or "") if cur else "", key="home.server_model",
                                 placeholder="blank: the one the server lists")
        sc = st.columns([2, 1, 1, 1])
        key_env = sc[0].text_input("API key: environment variable", value=cur.api_key_env if cur else ENV_KEY,
                                   key="home.server_key_env",
                                   help="The key is read from this variable of the app's environment at each request; "
                                        "it is never stored or shown.")
        gpus = sc[1].text_input("GPU indices", value=",".join(map(str, cur.gpu_indices or ())) if cur else "",
                                key="home.server_gpus", placeholder="auto",
                                help="NVML indices of the GPUs a server on this machine uses (blank: found from its process)")
        pid = sc[2].number_input("Server PID", min_value=0, value=int(cur.pid or 0) if cur else 0, step=1,
                                 key="home.server_pid", help="0: the process listening on the URL's port")
        timeout = sc[3].number_input("Timeout (s)", min_value=1.0, max_value=3600.0,
                                     value=float(cur.timeout_s) if cur else 120.0, step=10.0, key="home.server_timeout")
        st.caption(f"API key in `${ui.plain(key_env or ENV_KEY)}`: {'set' if ServerConfig.key_is_set(key_env) else 'not set'} "
                   "(none needed for a local server).")
        if st.button("Connect", type="primary", key="home.server_connect"):
            try:
                cfg = ServerConfig(url, model or None, key_env or ENV_KEY, float(timeout), parse_indices(gpus),
                                   int(pid) or None)
            except SproutError as exc:
                st.error(ui.error_text(exc))
            else:
                with st.spinner(f"Connecting to {cfg.base_url}…"):
                    ok, msg = ui.switch_backend(backends.BackendChoice("server", server=cfg))
                (st.success if ok else st.error)(msg + ("" if ok else " The previous backend stays in use."))
                if ok:
                    st.rerun()

# ------------------------------------------------------------------ threads
with st.expander("Torch threads"):
    import sys

    # torch is imported by the transformers path only; Home does not import it for llama.cpp (seconds on 2 cores)
    _torch = sys.modules.get("torch")
    torch_threads = _torch.get_num_threads() if _torch is not None else default_threads()

    if SHARED:
        st.caption(f"Torch uses {style.fmt_count(torch_threads, 'thread')} in this app process. This Sprout is shared, so "
                   "threads are the operator's setting (SPROUT_TORCH_THREADS when the server starts).")
    else:
        st.caption(f"Default here: {default_threads()} (one thread on machines with 2 cores or fewer; "
                   "set SPROUT_TORCH_THREADS to change the default). This applies to the whole app process.")
        n = st.number_input("Threads", min_value=1, max_value=64, value=min(64, torch_threads), step=1,
                            help="Currently in use by this app process.")
        if st.button("Apply threads"):
            with ui.error_boundary("Threads not changed: "):
                st.success(f"Torch now uses {style.fmt_count(configure_threads(int(n)), 'thread')}.")

# ------------------------------------------------------------------ data
st.subheader("Data")
for ds in public_data_status():
    if ds.present:
        st.markdown(f":material/check_circle: **{ds.name}** — {ds.purpose.rstrip('.')}.")
    else:
        st.markdown(f":material/warning: **{ds.name}** is missing at `{ui.plain(ui.visitor_message(ds.path))}` — {ds.purpose.rstrip('.')}. "
                    "See the README, *Public data*, for where to get it; the rest of the app works without it.")
