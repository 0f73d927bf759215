"""Sprout core library: directives, generation, energy, carbon, optimizer, evaluation.

Nothing in this package imports streamlit except :mod:`sprout_core.ui`.
Importing the package forces Hugging Face libraries offline: Sprout never fetches
models or data from a hub at run time.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
