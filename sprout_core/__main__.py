"""``python -m sprout_core <command>``."""
from sprout_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
