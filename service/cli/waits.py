"""How a queued job's place and estimated wait read in the CLI's job displays."""

from __future__ import annotations

from typing import Any


def duration_text(seconds: float) -> str:
    """12 s, 4 min, 2 h 5 min: an estimate needs no more precision than that."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def queue_text(job: dict[str, Any]) -> str | None:
    """``#3, starts in about 4 min`` for a queued job (no estimate: just ``#3``); else None."""
    position = job.get("queue_position")
    if job.get("status") != "queued" or position is None:
        return None
    estimate = job.get("queue_estimate_s")
    if estimate is None:
        return f"#{position}"
    return f"#{position}, starts in about {duration_text(estimate)}"
