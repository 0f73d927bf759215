"""Small pure helpers the Optimizer page uses so it never goes blank (no streamlit).

* :func:`clamp_theta` — a floor θ above what any mix can keep becomes the reachable maximum, with a
  sentence saying so (instead of an infeasible decision and no charts);
* :func:`check_hour` — an hour of the year outside the trace becomes a message, not a stale decision.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Floor:
    """The floor θ the optimizer uses (``theta``), what was asked (``asked``) and why they differ (``message``)."""

    theta: float
    asked: float
    message: str = ""

    @property
    def clamped(self) -> bool:
        return self.theta != self.asked


def clamp_theta(theta: float, max_theta: float, best_level: str = "") -> Floor:
    """``theta`` if some mix reaches it, else ``max_theta`` (rounded down to 3 decimals) with a message."""
    if theta <= max_theta + 1e-12:
        return Floor(float(theta), float(theta))
    reach = int(max_theta * 1000) / 1000
    who = f" (always {best_level})" if best_level else ""
    return Floor(reach, float(theta),
                 f"No mix keeps θ = {theta:.2f} × q₀: the most any mix can keep is {max_theta:.3f} × q₀{who}. "
                 f"Showing the decision at θ = {reach:.3f} instead.")


def check_hour(hour: int | float | None, n_hours: int, year: int | None = None) -> tuple[int | None, str]:
    """``(hour, "")`` for an hour of the trace (0 … ``n_hours`` − 1), else ``(None, message)``."""
    if hour is None:
        return None, "Type an hour of the year."
    try:
        h = int(hour)
    except (TypeError, ValueError):
        return None, f"{hour!r} is not an hour: type a whole number from 0 to {n_hours - 1}."
    if h != hour or not 0 <= h < n_hours:
        of = f" of {year}" if year else ""
        return None, (f"Hour {hour} is outside the trace{of}: hours run from 0 (1 Jan 00:00 UTC) to {n_hours - 1} "
                      "(31 Dec 23:00 UTC). No decision is shown for it.")
    return h, ""
