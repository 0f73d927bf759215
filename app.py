"""Sprout — see, measure and cut the carbon cost of LLM inference.

Run with ``streamlit run app.py``. This file only sets the page config and routes;
every page is a thin script under ``pages/`` over :mod:`sprout_core`.
"""
from pathlib import Path

import streamlit as st

from sprout_core import ui

# the favicon is a file of ours: a Material-icon favicon is fetched from the web by the browser (offline rule)
ICON = str(Path(__file__).resolve().parent / "data" / "sprout-icon.png")
st.set_page_config(page_title="Sprout — carbon-friendly LLM inference", page_icon=ICON, layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/eco:", default=True),
    st.Page("pages/lesson.py", title="Lesson", icon=":material/school:", url_path="lesson"),
    st.Page("pages/playground.py", title="Playground", icon=":material/chat:", url_path="playground"),
    st.Page("pages/optimizer.py", title="Optimizer", icon=":material/tune:", url_path="optimizer"),
    st.Page("pages/evaluations.py", title="Evaluations", icon=":material/balance:", url_path="evaluations"),
    st.Page("pages/whatif.py", title="What-if", icon=":material/public:", url_path="whatif"),
    st.Page("pages/history.py", title="History", icon=":material/history:", url_path="history"),
    st.Page("pages/live.py", title="Live", icon=":material/sensors:", url_path="live"),
]

ui.keep_streamlit_offline()  # also when started with a plain `streamlit run app.py`
ui.visitor_id()  # class mode: keeps this browser's visitor id in the address on every page (survives a reload)
with ui.error_boundary():  # any error a page does not handle: its type and message, never a stack
    st.navigation(PAGES).run()
