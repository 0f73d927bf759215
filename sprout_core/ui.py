"""Streamlit glue: the only module in ``sprout_core`` that imports streamlit.

Holds cached resources (models are loaded once per process and shared by all sessions,
behind :data:`sprout_core.generation.GENERATION_LOCK` for generation) and small widgets
shared by several pages. No business rules here.
"""
from __future__ import annotations

import streamlit as st

from sprout_core.directives import DirectiveSet, load_directive_set
from sprout_core.models import EMBEDDED_SPEC, LoadedModel, ModelLoadError, default_model_spec, load_model

_SPEC_KEY = "sprout.model_spec"
_CUSTOM_KEY = "sprout.custom_levels"


@st.cache_resource(max_entries=2, show_spinner=False)
def _cached_model(spec: str, device: str | None, dtype: str | None) -> LoadedModel:
    """Load a model once per process (failures are not cached, so a fixed folder can be retried)."""
    return load_model(spec, device=device, dtype=dtype)


def model_spec() -> str:
    """The model this session uses: ``embedded`` or a folder path."""
    return st.session_state.get(_SPEC_KEY) or default_model_spec()


def get_model() -> LoadedModel | None:
    """The session's model, loading it on first use with a spinner; None (and an error shown) on failure."""
    spec = model_spec()
    label = "the embedded SmolLM2-135M-Instruct" if spec == EMBEDDED_SPEC else spec
    try:
        with st.spinner(f"Loading {label}… (the first start converts the embedded GGUF file once, ~20 s)"):
            return _cached_model(spec, None, None)
    except (ModelLoadError, ValueError) as exc:
        st.error(f"Could not load the model: {exc}")
        return None


def switch_model(spec: str, device: str | None = None, dtype: str | None = None) -> tuple[bool, str]:
    """Try to load ``spec``; on success make it this session's model. The previous model stays on failure."""
    spec = spec.strip() or EMBEDDED_SPEC
    try:
        lm = _cached_model(spec, device or None, dtype or None)
    except (ModelLoadError, ValueError) as exc:
        return False, str(exc)
    st.session_state[_SPEC_KEY] = spec
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
