"""Task-aware directives: read each prompt's task from its embedding, serve one mix per task.

* :mod:`sprout_core.tasks.classifier` — MiniLM embeddings + logistic regression, cached in the state folder;
* :mod:`sprout_core.tasks.lp` — the per-task LP (PuLP and an exact vectorised solver), misclassification
  accounting through the classifier's held-out confusion;
* :mod:`sprout_core.tasks.sim` — the SPROUT-TASK strategy of the what-if replay;
* :mod:`sprout_core.tasks.views` — data and Plotly figures for the pages (no streamlit).

Per-task costs and q come from :mod:`sprout_core.profiles`.

Submodules are imported on demand (the classifier pulls in torch and sentence-transformers).
See ``docs/tasks.md``.
"""
