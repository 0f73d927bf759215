"""Placeholder: this page is being built (see the project's issues)."""
import streamlit as st

st.title("History")
st.info("This page is not built yet in this version of Sprout.")
