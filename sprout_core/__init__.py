"""Sprout core library: directives, generation, energy, carbon, optimizer, evaluation.

Nothing in this package imports streamlit except :mod:`sprout_core.ui`.
Importing the package forces Hugging Face libraries offline: Sprout never fetches
models or data from a hub at run time (``sprout_core.ui.keep_streamlit_offline`` does the same for
Streamlit's own look-ups; ``tests/test_offline.py`` proves nothing leaves the machine).
"""
from __future__ import annotations

import logging
import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
              "DO_NOT_TRACK"):
    os.environ[_name] = "1"  # offline at run time, whatever the environment says
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: the library's logger ("sprout.<module>" children): every broad exception handler logs its reason here.
#: A library stays quiet by default (a NullHandler); ``SPROUT_DEBUG=1`` makes the CLI print it at DEBUG.
logging.getLogger("sprout").addHandler(logging.NullHandler())

__version__ = "0.1.0"
