"""Let oneMKL use AVX-512 on AMD CPUs in worker processes (see native/mkl_vendor.c).

MKL chooses GEMM kernels by CPU vendor first, so on Zen 4/5 it runs its AVX2 kernels at
about 40% of the core's fp32 rate (mnist_mlp: 100 vs 240 GFLOPS per core). The fix must be
in place before MKL first runs in a process, so it travels as LD_PRELOAD in the environment
of the spawned workers; the HTTP side, which only runs small prediction batches, is left
as it is.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

LIBRARY_STEM = "mkl_vendor"
NATIVE_DIR = Path(__file__).resolve().parent / "native"
# MKL's AVX-512 code path needs these; Zen 4 and Zen 5 have them all.
REQUIRED_FLAGS = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
CPUINFO = Path("/proc/cpuinfo")


def shim_library() -> Path | None:
    """The built library, or None where the optional extension could not be compiled."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = NATIVE_DIR / f"{LIBRARY_STEM}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def needs_shim(cpuinfo: str) -> bool:
    """An AMD CPU with the AVX-512 subsets MKL's AVX-512 kernels use."""
    vendor, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return vendor == "AuthenticAMD" and REQUIRED_FLAGS <= flags


def shim_for_this_host(enabled: bool) -> Path | None:
    """The library to preload into workers here, or None (and the reason, logged once)."""
    if not enabled:
        return None
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    if not torch.backends.mkl.is_available():
        return None
    try:
        cpuinfo = CPUINFO.read_text()
    except OSError:
        return None
    if not needs_shim(cpuinfo):
        return None
    library = shim_library()
    if library is None:
        logger.warning(
            "MKL will use its AVX2 kernels on this AMD AVX-512 CPU: %s was not built "
            "(install with a C compiler present to build it)",
            NATIVE_DIR / f"{LIBRARY_STEM}.c",
        )
    return library


def with_preload(environ: dict[str, str], library: Path) -> dict[str, str]:
    """``environ`` with ``library`` first in LD_PRELOAD, keeping what was already there."""
    existing = environ.get("LD_PRELOAD", "")
    entries = [str(library), *(e for e in existing.replace(":", " ").split() if e)]
    return {**environ, "LD_PRELOAD": " ".join(dict.fromkeys(entries))}


@contextlib.contextmanager
def preloaded(library: Path | None) -> Iterator[None]:
    """While inside, processes started from here inherit ``library`` in LD_PRELOAD.

    multiprocessing's spawn hands the child this process's environment, so setting it
    around ``Process.start()`` is what reaches the child; it is restored straight after.
    """
    if library is None:
        yield
        return
    before = os.environ.get("LD_PRELOAD")
    os.environ["LD_PRELOAD"] = with_preload(dict(os.environ), library)["LD_PRELOAD"]
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LD_PRELOAD", None)
        else:
            os.environ["LD_PRELOAD"] = before
