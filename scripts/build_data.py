#!/usr/bin/env python3
"""Build the compact public data shipped in data/ (data/carbon, data/reference) from the public files.

    python scripts/build_data.py                       # from ../shared/data (else data/external) into data/
    python scripts/build_data.py --source /my/public   # from a folder holding carbon/ and llama2-13b-a100/
    python scripts/build_data.py --check               # rebuild in a temp folder, compare with the committed files

Prints the SHA-256 of every file it writes. See sprout_core/databuild.py and data/carbon/README.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sprout_core.databuild import main  # noqa: E402 - after the path set-up

if __name__ == "__main__":
    raise SystemExit(main())
