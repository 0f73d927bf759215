"""CLI commands, one module each (see sprout_core.cli)."""
