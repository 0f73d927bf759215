"""Per-page views: what each page shows, as data, sentences and Plotly figures — no streamlit here.

A page reads its widgets, calls one or two functions of its view module and renders the result
(the pattern of :mod:`sprout_core.tasks.views`). Colours and units come from :mod:`sprout_core.style`.
"""
