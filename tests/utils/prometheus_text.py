"""Reading Prometheus' text exposition format in tests."""

from __future__ import annotations

import re


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value in Prometheus' text format (labels sorted, as prometheus_client
    writes them), or None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None
