"""Which job ``device`` requests a worker's device can honour.

In the store, not in workers: the claim query runs in workers, but the API also needs it to
say why a queued job waits (no live worker can claim its request).
"""

from __future__ import annotations


def claimable_requests(worker_device: str) -> list[str]:
    """The job ``device`` values a worker owning ``worker_device`` can honour."""
    requests = ["auto", "cpu"]
    if worker_device.startswith("cuda"):
        requests += ["cuda", worker_device]
    elif worker_device == "mps":
        requests.append("mps")
    return requests
