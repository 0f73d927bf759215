"""Streamlit glue: the only module in ``sprout_core`` that imports streamlit.

Holds cached resources (models are loaded once per process and shared by all sessions,
behind :data:`sprout_core.generation.GENERATION_LOCK` for generation; a serving engine is
connected once per process and needs no lock) and small widgets shared by several pages.
No business rules here.

Page boundaries (issue 10): :func:`show_error` shows a :class:`~sprout_core.errors.SproutError`'s message
and anything else as its type and message (never a stack; the stack goes to the server console);
:func:`error_boundary` wraps an action. :func:`safe_md` / :func:`show_text` render model output and
uploaded text so that the browser never fetches anything (no Markdown image, link or autolink can
form; raw HTML stays escaped). :func:`shared` tells whether this server is shared (class mode,
:mod:`sprout_core.access`): then model folders come from the operator's list and process-wide
settings are not offered.
"""
from __future__ import annotations

import contextlib
import html
import logging
import re
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from sprout_core import access, backends, grid, style
from sprout_core import run as run_loop
from sprout_core.directives import DirectiveSet, load_directive_set
from sprout_core.errors import SproutError, internal_error_message, redact_paths
from sprout_core.models import EMBEDDED_SPEC, LoadedModel, default_model_spec, load_model
from sprout_core.serving.client import ServerConfig, ServerModel
from sprout_core.serving.llamacpp import LlamaCppModel
from sprout_core.style import fmt_energy, fmt_grams, level_color  # noqa: F401 - the pages' formatting API
from sprout_core.views import playground as run_views

_log = logging.getLogger("sprout.ui")

# ---------------------------------------------------------------------------------------------
# Error boundary and safe rendering
# ---------------------------------------------------------------------------------------------

def show_error(exc: BaseException, prefix: str = "", container=None) -> None:
    """Show ``exc`` on the page: a SproutError's message, else type and message (a bug; stack to the console)."""
    c = container or st
    if isinstance(exc, SproutError):
        c.error(plain(visitor_message(f"{prefix}{exc.user_message()}")))
        return
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    c.error(plain(visitor_message(f"{prefix}{internal_error_message(exc)}")))


@contextlib.contextmanager
def error_boundary(prefix: str = "", container=None):
    """``with ui.error_boundary("Could not save: "):`` — any error inside is shown (see :func:`show_error`),
    the page goes on. Streamlit's own rerun/stop signals pass through (they are not ``Exception``)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the page boundary: shown as a message, never a stack
        _log.debug("the page boundary: shown as a message, never a stack: %s", exc, exc_info=True)
        show_error(exc, prefix, container)


_ZW = "\u200b"  # zero-width space: invisible, but no Markdown link, image or autolink can form across it
_BREAKS = [
    (re.compile(r"\][ \t]*(?=[(\[:])"), lambda m: m.group(0) + _ZW),      # [text](url), ![alt](url), [x][ref], [ref]: url
    (re.compile(r"!(?=\[)"), lambda m: "!" + _ZW),                        # ![ … the image marker itself
    (re.compile(r"<(?=[A-Za-z][A-Za-z0-9+.-]{1,31}:|[^\s<>@]+@)"), lambda m: "<" + _ZW),  # <scheme:…> and <a@b> autolinks
    (re.compile(r"(?<=[A-Za-z0-9+.-]):(?=//)"), lambda m: ":" + _ZW),    # http://… literal autolinks (GFM)
    (re.compile(r"(?i)\bwww(?=\.)"), lambda m: m.group(0) + _ZW),        # www.… literal autolinks (GFM)
    (re.compile(r"(?i)\\(?=(href|url|includegraphics)\b)"), lambda m: "\\" + _ZW),  # KaTeX links/images
]


def safe_md(text: object) -> str:
    """``text`` for ``st.markdown`` with nothing the browser would fetch or follow.

    Formatting (bold, lists, code, tables) still renders; link and image syntax, autolinks and URL
    literals are broken with an invisible zero-width space, wherever they are (also inside code, where
    a backslash escape would show). Raw HTML is escaped by Streamlit already (no ``unsafe_allow_html``)."""
    s = "" if text is None else str(text)
    for pattern, repl in _BREAKS:
        s = pattern.sub(repl, s)
    return s


_MD_SIGNS = re.compile(r"([\\`*_\[\]<>!$~|&])")  # every sign that can start formatting, a link, an image or HTML
_MD_LINE_START = re.compile(r"^(\s*)(\d*)([#+\-=.)])")  # a heading, list or rule at the start of the text


def plain(text: object, multiline: bool = False) -> str:
    """``text`` (a name, file name, zone name, CSV cell, judge reply, error message, …) as *literal
    characters* inside Markdown: the signs that can start formatting, a link, an image, HTML or LaTeX
    (``\\ ` * _ [ ] < > ! $ ~ | &``, and a heading or list marker at the start) are backslash-escaped,
    and URL literals, ``www.`` and e-mail autolinks are broken with an invisible zero-width space
    (:func:`safe_md`'s breaks), so nothing but the characters themselves can form; line breaks become
    spaces unless ``multiline``. The one way to put outside text into a page's message, caption or
    Markdown (``tests/test_hardening_render.py`` enforces it)."""
    s = "" if text is None else str(text)
    s = "".join(c if c.isprintable() or c == "\n" else " " for c in s)
    s = _MD_SIGNS.sub(r"\\\1", s)
    for pattern, repl in _BREAKS[3:5]:  # http://… and www.… literal autolinks
        s = pattern.sub(repl, s)
    s = s.replace("@", "@" + _ZW)  # e-mail autolinks
    lines = [_MD_LINE_START.sub(r"\1\2\\\3", ln) for ln in s.split("\n")]
    return "  \n".join(lines) if multiline else " ".join(lines)


def error_text(exc: object) -> str:
    """An error (an exception or its message) for ``st.error``/``st.warning``: its user-facing text
    (:func:`sprout_core.errors.describe`), without server paths in class mode (:func:`visitor_message`),
    as plain text (:func:`plain`: a file or zone name in it forms nothing)."""
    from sprout_core.errors import describe

    s = describe(exc) if isinstance(exc, BaseException) else ("" if exc is None else str(exc))
    return plain(visitor_message(s))


def show_plain(text: object, container=None, empty: str = "_(empty)_", multiline: bool = True) -> None:
    """Render outside text that is not a model answer (a judge reply, a CSV cell) as plain text."""
    s = "" if text is None else str(text)
    (container or st).markdown(plain(s, multiline=multiline) if s.strip() else empty)


def visitor_message(text: object) -> str:
    """A message for the page: in class mode server paths are replaced by ``<server folder>`` (the full text
    goes to the server's log), so visitors never learn the server's file layout (issue 20.1)."""
    s = "" if text is None else str(text)
    if not shared():
        return s
    from sprout_core import paths

    roots = [str(paths.REPO_ROOT), str(paths.state_dir(create=False)), str(paths.public_data_dir()),
             str(Path.home())]
    out = redact_paths(s, roots)
    if out != s:
        print(f"[sprout] shown to a visitor without its paths: {s}", file=sys.stderr)
    return out


def show_text(text: object, container=None, empty: str = "_(empty)_") -> None:
    """Render model output or uploaded text safely (:func:`safe_md`); ``empty`` when there is none."""
    s = "" if text is None else str(text)
    (container or st).markdown(safe_md(s) if s.strip() else empty)


def keep_streamlit_offline() -> None:
    """Stop Streamlit from contacting the network: its external-IP look-up (an HTTP request to
    checkip.amazonaws.com, made for the start-up banner on a wildcard address and for cross-origin
    checks) and its internal-IP probe (a UDP "connect" to 8.8.8.8) are replaced by local answers.
    Idempotent; called by ``python -m sprout_core.serve`` before the server starts and by ``app.py``."""
    from streamlit import net_util

    if getattr(net_util, "_sprout_offline", False):
        return

    def external_ip() -> None:
        return None  # unknown: set browser.serverAddress (scripts/start.sh --shared does) for the banner

    def internal_ip() -> str:
        import psutil

        try:
            for addrs in psutil.net_if_addrs().values():
                for a in addrs:
                    if a.family.name == "AF_INET" and not a.address.startswith("127."):
                        return a.address
        except (OSError, AttributeError):
            pass
        return "127.0.0.1"

    net_util.get_external_ip = external_ip
    net_util.get_internal_ip = internal_ip
    net_util._sprout_offline = True


def shared() -> bool:
    """Whether this server is shared (class mode): ``SPROUT_SHARED=1`` or listening beyond loopback."""
    try:
        address = st.get_option("server.address")
    except Exception as exc:  # noqa: BLE001 - outside a server (tests): only the flag counts
        _log.warning("outside a server (tests): only the flag counts: %s", exc)
        address = None
    return access.shared_mode(address or "127.0.0.1")

# ---------------------------------------------------------------------------------------------
# Who is this browser (class mode)
# ---------------------------------------------------------------------------------------------
_VISITOR_KEY = "sprout.visitor_id"
#: the query parameter that carries a class-mode visitor's id across reloads (Streamlit starts a new session
#: on a reload, but the browser keeps the address, so the id in it survives; a cookie cannot be set from a script)
VISITOR_PARAM = "visitor"


def visitor_id() -> str:
    """A stable identifier of this browser tab's visitor.

    Locally (not class mode) everyone at the machine is the operator: :data:`sprout_core.access.LOCAL_VISITOR`.
    In class mode (:func:`shared`): a random token (:func:`sprout_core.access.new_visitor_id`, 128 bits) made
    on the first visit and kept in the address as ``?visitor=…``, so a reload — which ends the Streamlit
    session — finds the same visitor again; a page switch that drops the parameter gets it back on the next
    script run (``app.py`` calls this on every run). A malformed value in the address is replaced by a new
    token. The token is a bearer secret: whoever has the address with it *is* that visitor (a copied link
    shares the uploads and the caps); it is never shown on a page and never becomes a path (the state folder
    uses :func:`sprout_core.access.visitor_namespace`, a hash of it)."""
    if not shared():
        return access.LOCAL_VISITOR
    vid = st.session_state.get(_VISITOR_KEY)
    if vid is None:
        try:
            raw = st.query_params.get(VISITOR_PARAM)
        except Exception as exc:  # noqa: BLE001 - outside a script run (no query string): a fresh visitor
            _log.warning("outside a script run (no query string): a fresh visitor: %s", exc)
            raw = None
        vid = raw if access.valid_visitor_id(raw) else access.new_visitor_id()
        st.session_state[_VISITOR_KEY] = vid
    try:
        if st.query_params.get(VISITOR_PARAM) != vid:
            st.query_params[VISITOR_PARAM] = vid
    except StreamlitAPIException:  # pragma: no cover - no address to write to (e.g. a bare script); id kept
        pass
    return vid


def visitor_folder(kind: str):
    """Where this class-mode visitor's own files of ``kind`` (e.g. ``uploads``) go:
    ``<state>/visitors/<hash of the id>/<kind>`` (cleared by ``grid clear --visitors``); ``None`` for the
    operator (the usual place)."""
    who = visitor_id()
    if access.is_operator(who):
        return None
    return grid.visitors_dir(create=True) / access.visitor_namespace(who) / kind


def _session_visitor() -> str | None:
    """The visitor of the script run on this thread (grid's view resolver); ``None`` outside a run."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx() is None:
        return None
    return visitor_id()


grid.set_visitor_resolver(_session_visitor)

_SPEC_KEY = "sprout.model_spec"
_CUSTOM_KEY = "sprout.custom_levels"
_BACKEND_KEY = "sprout.backend"  # a backends.BackendChoice for llama.cpp / a server; absent: transformers


@st.cache_resource(max_entries=2, show_spinner=False)
def _cached_model_local(spec: str, device: str | None, dtype: str | None) -> LoadedModel:
    """Load a model once per process (failures are not cached, so a fixed folder can be retried)."""
    return load_model(spec, device=device, dtype=dtype)


@st.cache_resource(show_spinner=False)
def _cached_model_shared(spec: str, device: str | None, dtype: str | None) -> LoadedModel:
    """Shared mode: models stay loaded (a user's choice never evicts another user's model); only the
    operator's list can be loaded, so the list bounds the memory."""
    return load_model(spec, device=device, dtype=dtype)


def _cached_model(spec: str, device: str | None, dtype: str | None) -> LoadedModel:
    if shared():
        spec = access.check_model_spec(spec, True)
        return _cached_model_shared(spec, device, dtype)
    return _cached_model_local(spec, device, dtype)


def model_spec() -> str:
    """The model this session uses: ``embedded`` or a folder path."""
    return st.session_state.get(_SPEC_KEY) or default_model_spec()


# ------------------------------------------------------------------ backends (serving engines, llama.cpp)
@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_server(cfg: ServerConfig) -> ServerModel:
    """One connected server per configuration and process (shared by sessions: its energy meter sees all
    their overlapping requests). Failures are not cached."""
    return ServerModel.connect(cfg)


@st.cache_resource(max_entries=1, show_spinner=False)
def _cached_llamacpp() -> LlamaCppModel:
    return LlamaCppModel.load_embedded()


def backend_choice() -> backends.BackendChoice:
    """This session's backend: what it picked on Home, else the environment's (SPROUT_BACKEND, SPROUT_SERVER_URL)."""
    picked = st.session_state.get(_BACKEND_KEY)
    if picked is not None:
        return picked
    try:
        env = backends.default_choice()
    except SproutError as exc:
        st.warning(f"Ignoring the server settings in the environment: {error_text(exc)}")
        return backends.BackendChoice()
    if env.kind == "transformers" or (env.kind == "llama.cpp" and model_spec() != EMBEDDED_SPEC):
        # a model folder this session loaded runs on transformers (llama.cpp runs the embedded GGUF only)
        return backends.BackendChoice(model=model_spec(), why=env.why if env.kind == "transformers" else
                                      "a local model folder runs on transformers")
    return env


def _open(choice: backends.BackendChoice):
    if choice.kind == "server":
        assert choice.server is not None
        return _cached_server(choice.server)
    if choice.kind == "llama.cpp":
        return _cached_llamacpp()
    return _cached_model(choice.model, choice.device, choice.dtype)


def switch_backend(choice: backends.BackendChoice) -> tuple[bool, str]:
    """Connect/load ``choice``; on success make it this session's backend (the previous one stays on failure)."""
    try:
        if choice.kind == "server" and shared():
            operator = backends.default_choice().server
            if operator is None or choice.server != operator:  # no visitor points the server at a URL of theirs
                access.require_operator("the serving engine's address", True)
        if choice.kind == "server":  # check it now, even if a connection to it is cached
            ServerModel.connect(choice.server)
        lm = _open(choice)
    except (SproutError, ValueError) as exc:
        return False, str(exc)
    if choice.kind == "transformers":
        # kept as the session's choice: the default (llama.cpp when installed) must not take over again
        st.session_state[_BACKEND_KEY] = replace(choice, why="picked on Home")
        st.session_state[_SPEC_KEY] = choice.model
    else:
        st.session_state[_BACKEND_KEY] = choice
    if choice.kind == "server":
        return True, f"Connected to {lm.info.path}: model {lm.info.name} ({lm.info.load_s * 1000:.0f} ms)."
    return True, f"Loaded {lm.info.name} with {lm.backend} on {lm.info.device} in {lm.info.load_s:.1f} s."


def get_model():
    """The session's backend (transformers model, llama.cpp model or server), loading/connecting it on first
    use with a spinner; None (and an error shown) on failure."""
    choice = backend_choice()
    if choice.kind != "transformers":
        try:
            with st.spinner(f"Opening {choice.label()}…"):
                return _open(choice)
        except (SproutError, ValueError) as exc:
            if choice.kind != "llama.cpp" or st.session_state.get(_BACKEND_KEY) is not None:
                st.error(f"Could not use {plain(choice.label())}: {error_text(exc)} Pick another backend on the Home page.")
                return None
            # llama.cpp was only the default: say why it is not used and fall back to transformers
            st.warning(f"llama.cpp could not load the embedded model ({error_text(exc)}); using transformers instead.")
    spec = model_spec()
    label = "the embedded SmolLM2-135M-Instruct" if spec == EMBEDDED_SPEC else spec
    try:
        with st.spinner(f"Loading {label}… (the first start converts the embedded GGUF file once, ~20 s)"):
            return _cached_model(spec, None, None)
    except Exception as exc:  # noqa: BLE001 - the page boundary: a message, the page goes on
        _log.debug("the page boundary: a message, the page goes on: %s", exc, exc_info=True)
        show_error(exc, "Could not load the model: ")
        return None


def switch_model(spec: str, device: str | None = None, dtype: str | None = None) -> tuple[bool, str]:
    """Try to load ``spec``; on success make it this session's model. The previous model stays on failure."""
    spec = spec.strip() or EMBEDDED_SPEC
    try:
        lm = _cached_model(spec, device or None, dtype or None)
    except SproutError as exc:
        return False, exc.user_message()
    except Exception as exc:  # noqa: BLE001 - the page boundary: a message, the previous model stays
        _log.warning("the page boundary: a message, the previous model stays: %s", exc)
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return False, internal_error_message(exc)
    st.session_state[_SPEC_KEY] = spec
    # a model loaded here runs on transformers: it replaces a server / llama.cpp choice (and the default)
    st.session_state[_BACKEND_KEY] = backends.BackendChoice(model=spec, why="picked on Home")
    return True, f"Loaded {lm.info.name} on {lm.info.device} ({lm.info.dtype}) in {lm.info.load_s:.1f} s."


def directive_set(lm: LoadedModel) -> DirectiveSet:
    """The model's directive set plus the levels this session added."""
    dset = load_directive_set(lm.info.directive_set)
    for level, (text, label) in st.session_state.get(_CUSTOM_KEY, {}).items():
        dset = dset.with_level(level, text, label)
    return dset


def add_custom_level(level: str, text: str, label: str, base: DirectiveSet) -> None:
    """Validate (ValueError with a message) and remember a user-defined level for this session."""
    base.with_level(level, text, label)  # validation
    if level.strip() in [d.level for d in base.levels if not d.custom]:
        raise ValueError(f"{level} is one of the model's own levels; pick another name (e.g. L{len(base.levels)})")
    custom = dict(st.session_state.get(_CUSTOM_KEY, {}))
    custom[level.strip()] = (text.strip(), label.strip())
    st.session_state[_CUSTOM_KEY] = custom


def remove_custom_level(level: str) -> None:
    custom = dict(st.session_state.get(_CUSTOM_KEY, {}))
    custom.pop(level, None)
    st.session_state[_CUSTOM_KEY] = custom


# ---------------------------------------------------------------------------------------------
# Energy and carbon widgets (issue 3). Pure formatting lives here; formulas live in
# sprout_core.energy / sprout_core.carbon / sprout_core.metered.
# ---------------------------------------------------------------------------------------------

def method_badge(method: str) -> str:
    """A short word for a method label: measured / estimated / reference / n/a."""
    kind = method.split(":", 1)[0] if method else "n/a"
    return {"measured": "measured", "estimated": "estimated", "reference": "reference"}.get(kind, "n/a")


def live_energy_caption(new_tokens: int, tokens_per_s: float | None, power_w: float | None, energy_j: float | None,
                        method: str, carbon_g: float | None = None) -> str:
    """One line for a streaming answer: tokens, tokens/s, power (W), energy (J) and carbon (g CO₂e) so far."""
    rate = f"{tokens_per_s:.1f} tokens/s" if tokens_per_s else "… tokens/s"
    pw = style.fmt_power(power_w) if power_w is not None else "… W"
    en = fmt_energy(energy_j) if energy_j is not None else ("n/a" if method == "n/a" else "… J")
    co2 = fmt_grams(carbon_g) if carbon_g is not None else ("n/a" if method == "n/a" else "… g CO₂e")
    return f"{style.fmt_count(new_tokens, 'token')} · {rate} · {pw} · {en} · {co2} so far · {method_badge(method)} ({method})"


def note_metric(label: str, value: str, note: str | None = None, help: str | None = None, container=None,
                width: int | str = "stretch") -> None:
    """``st.metric`` whose second line is a neutral note (grey, no arrow): a method, a basis, a count.
    ``width``: "stretch" or pixels (metrics of one width in a horizontal container wrap instead of cutting values)."""
    (container or st).metric(label, value, delta=note, delta_color="off", delta_arrow="off", help=help, width=width)


def energy_metric(label: str, energy_j: float | None, method: str, uncertainty_j: float | None = None,
                  source: str | None = None, container=None, width: int | str = "stretch") -> None:
    """``st.metric`` of an energy with its method as a neutral note and the source as help."""
    unc = f" ± {fmt_energy(uncertainty_j)}" if (uncertainty_j is not None and energy_j is not None) else ""
    note_metric(label, fmt_energy(energy_j), f"{method_badge(method)} · {method}{unc}", container=container,
                help=style.method_help(method) + (f" Source: {source}" if source else ""), width=width)


def carbon_metric(label: str, grams: float | None, note: str, container=None, width: int | str = "stretch") -> None:
    """``st.metric`` of a carbon mass (g CO₂e, readable unit) with a short neutral note (e.g. the intensity)."""
    note_metric(label, fmt_grams(grams), note, container=container, width=width)


#: one line a page shows once, near its first chart
PNG_HINT = (":material/photo_camera: Every chart can go on a slide: hover it and click the camera icon (“Download plot as png”, "
            "twice the screen resolution). It is drawn in the browser, so it works offline.")


def png_config(filename: str = "sprout-chart") -> dict:
    """Plotly config: the mode bar's "Download plot as png" button saves a 2× PNG named ``filename``.

    The PNG is made in the browser by plotly.js (no kaleido, no Chrome on the server), so it works offline.
    """
    return {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"],
            "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}


def chart(fig, key: str | None = None, filename: str | None = None, container=None) -> None:
    """A Plotly chart, full width, downloadable as PNG from its mode bar (the camera icon, top right on hover)."""
    (container or st).plotly_chart(fig, width="stretch", key=key, config=png_config(filename or key or "sprout-chart"))


def png_hint(container=None) -> None:
    """Say once on a page how to get its charts as PNG for slides."""
    (container or st).caption(PNG_HINT)


def level_chip(level: str, position: int | None = None) -> str:
    """HTML of a level name on its colour (escaped; render with ``unsafe_allow_html=True``)."""
    bg = level_color(level, position)
    fg = "#ffffff" if bg in style.LEVEL_PALETTE[:2] + style.LEVEL_PALETTE[4:] else "#1b1b1b"
    return (f'<span style="background:{bg};color:{fg};padding:1px 9px;border-radius:9px;font-weight:600">'
            f"{html.escape(str(level))}</span>")


def level_heading(level: str, text: str | None, container=None, position: int | None = None, extra: str = "") -> None:
    """A column heading: the level on its colour, then its directive (escaped; "" = no directive, ``None`` =
    not shown), then ``extra`` (escaped, bold)."""
    body = "" if text is None else (html.escape(safe_md(text)) if text else "<i>no directive</i>")
    tail = f" · <b>{html.escape(safe_md(extra))}</b>" if extra else ""
    (container or st).markdown(f"{level_chip(level, position)} {body}{tail}", unsafe_allow_html=True)


def train_task_classifier(key: str, container=None, disabled: bool = False) -> None:
    """The "Train the task classifier" button with its progress bar (shared by the Playground and What-if).

    Training embeds the public prompts once (a few minutes on a CPU) and caches the classifier; the page
    reruns when it is ready. Disabled when the public data it needs is missing.
    """
    # imported here, not with ui: the task LP pulls in scipy.optimize (seconds on a loaded 2-core machine), and
    # Home, which every visit opens first, never needs it
    from sprout_core.tasks import classifier as task_clf
    from sprout_core.tasks import views as task_views

    c = container or st
    if not c.button("Train the task classifier", key=key, disabled=disabled or not task_views.can_train_reference()):
        return
    bar = st.progress(0.0, text="Embedding prompts for the task classifier…")
    try:
        task_clf.reference_classifier(progress=lambda d, n: bar.progress(d / n if n else 1.0, text=f"Embedded {d}/{n} prompts"))
    except Exception as exc:  # noqa: BLE001 - training must not break the page or lose results
        _log.warning("training must not break the page or lose results: %s", exc)
        bar.empty()
        show_error(exc, "Could not train the task classifier: ")
        return
    st.rerun()


def page_link(page: str, label: str, icon: str | None = None, container=None) -> None:
    """``st.page_link`` to ``pages/<name>.py``; a plain link to ``/<name>`` where the page is run outside the
    app's navigation (a test harness running one page file)."""
    c = container or st
    try:
        c.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        c.markdown(f"[{label}](/{Path(page).stem})")


# ---------------------------------------------------------------------------------------------
# A live run of one prompt under several levels (Playground, Lesson): status line, Stop, live
# energy and carbon. The run's state lives in a sprout_core.views.playground.PlaygroundRun.
# ---------------------------------------------------------------------------------------------

def hold_to_caps(run):
    """In class mode (:func:`shared`): ``(run, notes)`` held to the operator's caps for this visitor
    (:func:`sprout_core.run.apply_caps`; :class:`~sprout_core.run.CapError` when it cannot run). Locally the
    run is unchanged."""
    if not shared():
        return run, []
    return run_loop.apply_caps(run, run_loop.ClassCaps.from_env(), visitor_id())


def class_caps_line() -> str | None:
    """The caps in force, for a caption (class mode only; ``None`` locally)."""
    if not shared():
        return None
    try:
        return run_loop.ClassCaps.from_env().describe()
    except SproutError as exc:
        return f"Class-mode caps: {exc}"


def current_run(key: str, stop_key: str):
    """The session's run under ``key``; a run the previous script run left mid-answer is marked ``stopped``
    (its Stop button was pressed) or ``cut`` (reload, another page) once its partial answer is recorded."""
    run = st.session_state.get(key)
    if run is not None and run.phase == run_views.RUNNING:
        run.wait_settled()  # Streamlit may start this script run before the interrupted one has finished
        run.end(run_views.STOPPED if st.session_state.get(stop_key) else run_views.CUT)
    return run


def stream_run(run, lm, meter, settings, stop_key: str, label: str, origin: str | None = None) -> None:
    """Draw a run of every level of ``run`` (:func:`sprout_core.run.execute` generates it, in one turn of the
    model): the status line, a Stop button, each level's answer live, and the run's totals.

    ``run.outcomes`` grows as levels finish; an answer cut short (Stop, reload, another page) is recorded
    too (aborted, with the energy so far) before the exception that stopped the script goes on.
    """
    if origin is not None:
        run.origin = origin
    st.subheader("Answers")
    status = st.empty()
    bar = st.columns([1, 4])
    bar[0].button("Stop", icon=":material/stop:", key=stop_key, help="Stop now: finished answers are kept, the answer in progress is "
                  "stored as aborted with the energy used so far.")
    bar[1].caption("Inputs are locked while the answers are generated; press Stop to cancel.")
    k1, k2, k3 = (c.empty() for c in st.columns(3))
    n = len(run.directives)

    def show_totals(live=None) -> None:
        if not run.outcomes and live is None:  # nothing generated yet: nothing to total (not "unknown")
            note_metric("Energy so far", "—", "nothing generated yet", container=k1)
            note_metric("Carbon so far", "—", "nothing generated yet", container=k2)
            note_metric("Answers done", f"0 of {n}", container=k3)
            return
        t = run_views.run_totals(run.outcomes, live)
        energy_metric("Energy so far", t.energy_j, t.method, container=k1)
        carbon_metric("Carbon so far", t.carbon_g, f"at {settings.intensity.ci_g_per_kwh:.0f} g/kWh, PUE {settings.pue:g}, "
                      "incl. embodied", container=k2)
        note_metric("Answers done", f"{t.answers} of {n}", container=k3)

    show_totals()
    cols = st.columns(n)
    body = cap_line = None
    who = visitor_id() if shared() else None  # class mode: the run's tokens count against this visitor's hour
    events = run_loop.execute(run, lm, meter, settings, label=label, visitor=who, ledger=run_loop.LEDGER)
    try:
        for ev in events:
            if ev.kind == run_loop.WAITING:
                status.warning(run_views.waiting_line(ev.ahead, ev.holder))
            elif ev.kind == run_loop.START:
                col = cols[ev.k - 1]
                level_heading(ev.level, ev.directive.text, container=col, position=ev.k - 1)
                body, cap_line = col.empty(), col.empty()
                cap_line.caption("waiting to start")
                status.info(run_views.progress_line(ev.level, ev.k, n, None, ev.prompt_tokens))
            elif ev.kind == run_loop.CHUNK:
                c = ev.chunk
                if c.text:
                    show_text(ev.text + " ▌", body, "_(empty answer)_")
                cap_line.caption(live_energy_caption(c.new_tokens, c.tokens_per_s, c.power_w, c.energy_j, c.method,
                                                     c.carbon_g))
                status.info(run_views.progress_line(ev.level, ev.k, n, c, ev.prompt_tokens))
                show_totals(c)
            elif ev.kind == run_loop.ANSWER:
                o, col = ev.outcome, cols[ev.k - 1]
                show_text(o.result.text, body, "_(empty answer)_")
                cap_line.caption(run_views.done_caption(o, "done"))
                if o.store_error:
                    col.warning(f"Not saved to the history: {error_text(o.store_error)}")
                if o.result.error:
                    col.error(f"Generation failed: {error_text(o.result.error)}")
                show_totals()
    finally:  # also when the page is stopped or rerun mid-answer: the partial answer is recorded, the turn freed
        events.close()
    status.success(f"Done: {n:d} answer(s).")


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_meter(device: str, cpu_preset: str, per_core_w: float | None):
    from sprout_core.energy import detect_meter

    return detect_meter(device, cpu_model=cpu_preset, per_core_w=per_core_w)


def default_meter(lm):
    """The automatic energy meter for backend ``lm`` — a server's shared meter, else the device's meter with
    the default CPU model — shared per process, no widgets."""
    from sprout_core.energy import CPU_PRESETS

    if isinstance(lm, ServerModel):
        return backends.meter_for(lm)
    return _cached_meter(lm.info.device, next(iter(CPU_PRESETS)), None)


def energy_meter(device, key: str = "energy", disabled: bool = False) -> "object":
    """The energy meter for ``device`` — a device name, or a backend (a server's shared meter) — shared per
    process, with a settings expander for the CPU estimate (``disabled`` locks it, e.g. during a run).

    Shows which backend runs and why others were skipped. Returns an
    :class:`~sprout_core.energy.EnergyMeter`.
    """
    from sprout_core.energy import CPU_PRESETS

    lm = None
    if not isinstance(device, str):
        lm, device = device, device.info.device
    with st.expander(f"Energy meter · device {device}", expanded=False):
        presets = list(CPU_PRESETS)
        preset = st.selectbox("CPU power model (used only for the CPU estimate)", presets, key=f"{key}.cpu_preset",
                              format_func=lambda k: f"{CPU_PRESETS[k].name} — {CPU_PRESETS[k].per_core_w:.2f} W per busy core",
                              disabled=disabled)
        custom = st.toggle("Set watts per busy core myself", key=f"{key}.custom_w", disabled=disabled)
        per_core = st.number_input("Watts per busy core (W)", min_value=0.1, max_value=100.0, value=5.0, step=0.5,
                                   key=f"{key}.per_core_w", disabled=disabled or not custom)
        if isinstance(lm, ServerModel):
            meter = backends.meter_for(lm, cpu_model=preset, per_core_w=float(per_core) if custom else None)
            st.caption("A serving engine: energy of its own device(s), split among overlapping requests by tokens "
                       "(docs/serving.md).")
        else:
            meter = _cached_meter(device, preset, float(per_core) if custom else None)
        st.markdown(f"**Backend:** `{meter.name}` — label `{meter.method}`")
        st.caption(meter.describe())
        st.caption(style.method_help(meter.method))
        if meter.method == "estimated:cpu-tdp":
            st.caption(f"Source of the CPU model: {meter.model.source}")
        for note in meter.notes:
            st.caption(f"Not used: {note}")
    return meter


@st.cache_resource(show_spinner="Reading carbon-intensity traces…", ttl=600, max_entries=4)
def _carbon_traces(signature: tuple):
    from sprout_core.paths import MissingDataError

    try:
        infos, errors = grid.list_traces()
        return infos, [str(e) for e in errors], None
    except MissingDataError as exc:
        return [], [], str(exc)


def carbon_traces():
    """``(infos, errors, missing_message)`` from :func:`sprout_core.grid.list_traces`, shared by all sessions
    and read again when a trace source changes (e.g. a user added a trace)."""
    return _carbon_traces(grid.sources_signature())


def _zone_label(info) -> str:
    """A trace's zone name for a selector or caption (plain text: selectors show it as is, captions get
    :func:`plain`), marked when it is the reader's own upload."""
    return grid.clean_zone_name(info.zone_name) + (" · your data" if info.origin == "user" else "")


def grid_upload(key: str) -> None:
    """Sidebar box "Add your own grid data": upload a year of hourly intensity, list and remove your traces.

    Call it before the page reads its zone list: a trace added here is then offered in the same run.
    Validation errors name the file and line; nothing stored changes on a bad file. In class mode the
    trace belongs to this visitor (:func:`visitor_id`): nobody else sees or removes it, shared data cannot
    be replaced, and messages never name the server's folders. Every name from the upload (file name,
    zone name) is shown as plain text (:func:`plain`).
    """
    who = visitor_id()
    box = st.sidebar.expander("Add your own grid data", expanded=False, icon=":material/add:")
    with box:
        where = ("Only you see it (this browser), until the operator clears the class's uploads."
                 if not access.is_operator(who) else "Kept in your data folder and offered wherever a zone is chosen.")
        st.caption("A year of hourly carbon intensity for a new zone or year: an **Electricity Maps export** (zone "
                   "and year come from the file) or a **two-column CSV** — hour of the year (0 = 1 Jan 00:00 UTC) "
                   "or a UTC time, then g CO₂eq/kWh. " + where)
        up = st.file_uploader("CSV file", type=["csv", "txt"], key=f"{key}.grid.file")
        zone = st.text_input("Zone id (needed for a two-column file)", key=f"{key}.grid.zone", placeholder="MY-LAB",
                             max_chars=40)
        year = st.number_input("Year (needed when the first column counts hours)", 1970, 2100, value=None, step=1,
                               key=f"{key}.grid.year", placeholder="e.g. 2024")
        name = st.text_input("Zone name (optional)", key=f"{key}.grid.name", max_chars=grid.MAX_ZONE_NAME_CHARS)
        replace = st.checkbox("Replace a zone-year that already exists" if access.is_operator(who) else
                              "Replace one of my own traces", key=f"{key}.grid.replace")
        msg_key = f"{key}.grid.message"
        if st.button("Add trace", key=f"{key}.grid.add", disabled=up is None, type="primary"):
            try:
                info = grid.add_user_trace(up.getvalue(), up.name, zone=zone.strip() or None,
                                           year=int(year) if year is not None else None,
                                           zone_name=name.strip() or None, replace=replace, visitor=who)
                tr = grid.load_trace(info.zone, info.year, visitor=who)
            except SproutError as exc:
                st.session_state[msg_key] = (up.file_id, "error", "Not added: " + plain(visitor_message(exc)))
            else:
                st.session_state[msg_key] = (
                    up.file_id, "success",
                    f"Added **{plain(info.zone)} {info.year:d}** ({plain(info.zone_name)}): {len(tr):,} hours, "
                    f"mean {tr.mean():.0f} g CO₂eq/kWh. Pick it in the zone list for {info.year:d}.")
        shown = st.session_state.get(msg_key)
        if shown and up is not None and shown[0] == up.file_id:  # until another file is chosen, across reruns
            (st.error if shown[1] == "error" else st.success)(shown[2])  # built above from plain() parts
        mine = grid.user_traces(visitor=who)
        if mine:
            st.markdown("**Your traces**")
            for i in mine:
                st.caption(f"{plain(i.zone)} {i.year:d} — {plain(i.zone_name)}")
                if st.button(f"Remove {plain(i.zone)} {i.year:d}", key=f"{key}.grid.rm.{i.zone}.{i.year}",
                             help="Deletes your copy; a shipped trace of the same zone-year comes back"):
                    with error_boundary("Not removed: "):
                        grid.remove_user_trace(i.zone, i.year, visitor=who)
                        st.rerun()


#: session-state key of the app-wide PUE (a plain key, not the widget's: it survives pages without the widget)
PUE_KEY = "sprout.pue"


def pue_setting(disabled: bool = False) -> float:
    """The one app-wide PUE (data-centre overhead, dimensionless, 1.0–3.0, default 1.0): a sidebar input whose
    value is kept in session state, so the Playground, the Optimizer and What-if price carbon with the same
    PUE. It scales operational carbon only (:func:`sprout_core.carbon.grams_per_request`)."""
    from sprout_core.validate import PUE_RANGE

    if PUE_KEY not in st.session_state:
        st.session_state[PUE_KEY] = 1.0
    wkey = PUE_KEY + ".widget"
    st.session_state[wkey] = float(st.session_state[PUE_KEY])

    def _keep() -> None:
        st.session_state[PUE_KEY] = float(st.session_state[wkey])

    st.sidebar.number_input("PUE (data-centre overhead, ≥ 1)", min_value=PUE_RANGE[0], max_value=PUE_RANGE[1], step=0.05,
                            key=wkey, on_change=_keep, disabled=disabled,
                            help="Power usage effectiveness: facility energy ÷ IT energy. It scales operational carbon "
                                 "(energy × intensity × PUE) on the Playground, the Optimizer and What-if alike; "
                                 "embodied carbon is not scaled.")
    return float(st.session_state[PUE_KEY])


def carbon_settings(key: str = "carbon", default_zone: str | None = None, disabled: bool = False):
    """Zone / hour / yearly mean or a 0–1,000 g/kWh slider, PUE and embodied preset → ``CarbonSettings``.

    Never raises for missing or broken data: it says what is missing and falls back to the slider.
    The zone and year shown first are :mod:`sprout_core.defaults`' (``default_zone`` overrides the zone).
    ``disabled`` locks every input (e.g. while a run prices its answers with them).
    """
    import datetime as dt

    from sprout_core import carbon, defaults
    from sprout_core.metered import CarbonSettings

    infos, errors, missing = carbon_traces()
    for e in errors:
        st.warning("Skipped a carbon-intensity file: " + plain(visitor_message(e)))
    c1, c2, c3 = st.columns([2, 2, 2])
    modes = ["Grid trace", "Slider"] if infos else ["Slider"]
    mode = c1.radio("Carbon intensity from", modes, key=f"{key}.mode", horizontal=True, disabled=disabled)
    if missing:
        c1.caption("No grid traces: " + plain(visitor_message(missing)))
    intensity = None
    if mode == "Grid trace":
        labels = [f"{i.zone} {i.year} — {_zone_label(i)}" for i in infos]
        zone0 = default_zone or defaults.default_zone()
        year0 = defaults.default_year(i.year for i in infos if i.zone == zone0)
        default = next((n for n, i in enumerate(infos) if i.zone == zone0 and i.year == year0), 0)
        pick = c1.selectbox("Zone and year", range(len(infos)), index=default, format_func=lambda n: labels[n], key=f"{key}.zone", disabled=disabled)
        info = infos[pick]
        column = c2.radio("Intensity", ["direct", "lca"], key=f"{key}.column", horizontal=True,
                          format_func=lambda c: "direct (operational)" if c == "direct" else "life-cycle (LCA)", disabled=disabled)
        when = c2.radio("When", ["Yearly mean", "One hour"], key=f"{key}.when", horizontal=True, disabled=disabled)
        hour = None
        if when == "One hour":
            day = c2.date_input("Day (UTC)", value=dt.date(info.year, 6, 1), min_value=dt.date(info.year, 1, 1),
                                max_value=dt.date(info.year, 12, 31), key=f"{key}.day.{info.year}", disabled=disabled)
            hh = c2.slider("Hour (UTC)", 0, 23, 12, key=f"{key}.hour", disabled=disabled)
            if day.year != info.year:
                day = dt.date(info.year, day.month, min(day.day, 28))
            hour = carbon.hour_of_year(info.year, day.month, day.day, hh)
        try:
            intensity = carbon.trace_intensity(info.zone, info.year, hour, column)
        except (SproutError, ValueError, OSError) as exc:  # a broken or missing file must not break the page
            st.error(f"Could not read the {plain(info.zone)} {info.year:d} trace: {plain(visitor_message(exc))}. "
                     "Using the slider instead.")
    if intensity is None:
        ci = c1.slider("Carbon intensity (g CO₂e/kWh)", 0, 1000, 300, step=5, key=f"{key}.override", disabled=disabled)
        intensity = carbon.override_intensity(float(ci))
    pue = pue_setting(disabled=disabled)
    c3.caption(f"PUE {pue:g} (data-centre overhead; set in the sidebar, used by every page)")
    names = list(carbon.EMBODIED_PRESETS) + ["custom"]
    ek = c3.selectbox("Embodied carbon of the device", names, key=f"{key}.embodied",
                      format_func=lambda k: "custom…" if k == "custom" else
                      f"{carbon.EMBODIED_PRESETS[k].name}: {carbon.EMBODIED_PRESETS[k].device_g / 1000:,.1f} kg / "
                      f"{carbon.EMBODIED_PRESETS[k].lifetime_years:g} y", disabled=disabled)
    if ek == "custom":
        kg = c3.number_input("Embodied carbon (kg CO₂e per device)", min_value=0.0, max_value=100_000.0, value=150.0,
                             key=f"{key}.emb_kg", disabled=disabled)
        years = c3.number_input("Lifetime (years)", min_value=0.5, max_value=20.0, value=5.0, step=0.5, key=f"{key}.emb_y", disabled=disabled)
        embodied = carbon.EmbodiedModel.custom(kg, years)
    else:
        embodied = carbon.EMBODIED_PRESETS[ek]
        c3.caption(f"Source: {embodied.source}")
    st.caption(f"Carbon intensity used: **{intensity.ci_g_per_kwh:.1f} g CO₂e/kWh** — {plain(intensity.label)}."
               + (f" {plain(info.attribution)}." if intensity.zone else ""))
    return CarbonSettings(intensity, float(pue), embodied)


def ensure_navigation() -> None:
    """Make a page opened by a direct link run through ``app.py``'s ``st.navigation``.

    Until ``app.py`` has run once in a server process, Streamlit treats the ``pages/`` folder the
    old way: a first visit to e.g. ``/optimizer`` runs ``pages/optimizer.py`` on its own, without
    the app's page config and navigation. Call this first in every page: in that case it switches
    the process to ``st.navigation`` routing and reruns, so ``app.py`` routes to the same page
    (each ``url_path`` in ``app.py`` equals its file's name, so the page is the same).
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - streamlit internals moved; routing still works from "/"
        return
    if getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        # At most once per session: a test harness that resets the flag on every run must not see
        # every run (and its widget events) replaced by a rerun.
        if not st.session_state.get("sprout.nav_rerun_done"):
            st.session_state["sprout.nav_rerun_done"] = True
            st.rerun()


def trace_choices() -> tuple[list[tuple[str, int, str]], list[str]]:
    """``(zone, year, zone name)`` of every readable trace and the broken files' messages.

    Raises :class:`~sprout_core.paths.MissingDataError` when there is no carbon data folder.
    """
    from sprout_core.paths import MissingDataError

    infos, errors, missing = carbon_traces()
    if missing:
        raise MissingDataError(missing)
    return [(i.zone, i.year, _zone_label(i)) for i in infos], list(errors)


def reference_profile():
    """The Sprout paper's reference profile, read once per process by :func:`sprout_core.profiles.load_reference`
    (its own cache; errors are not cached) — not cached again here."""
    from sprout_core import profiles

    return profiles.load_reference()
