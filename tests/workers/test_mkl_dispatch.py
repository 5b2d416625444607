"""Workers on AMD AVX-512 CPUs get MKL's AVX-512 kernels; everything else is left alone."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.utils.fake_workers import reporting_worker
from torchkiln.service.store.db import make_engine, upgrade_database
from torchkiln.service.store.settings import Settings
from torchkiln.workers import mkl_dispatch
from torchkiln.workers.pool import WorkerPool

ZEN5 = (
    "vendor_id\t: AuthenticAMD\n"
    "flags\t\t: fpu sse2 avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16\n"
)
ZEN3 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma\n"
SAPPHIRE_RAPIDS = (
    "vendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n"
)


def test_only_amd_cpus_with_avx512_need_the_shim() -> None:
    assert mkl_dispatch.needs_shim(ZEN5)
    assert not mkl_dispatch.needs_shim(ZEN3)
    assert not mkl_dispatch.needs_shim(SAPPHIRE_RAPIDS)
    assert not mkl_dispatch.needs_shim("")


def test_preload_goes_first_and_keeps_what_was_there(tmp_path: Path) -> None:
    library = tmp_path / "mkl_vendor.so"
    env = mkl_dispatch.with_preload({"LD_PRELOAD": "/opt/a.so:/opt/b.so", "HOME": "/h"}, library)
    assert env["LD_PRELOAD"] == f"{library} /opt/a.so /opt/b.so"
    assert env["HOME"] == "/h"
    again = mkl_dispatch.with_preload(env, library)
    assert again["LD_PRELOAD"] == env["LD_PRELOAD"]


def test_preloaded_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/opt/a.so")
    with mkl_dispatch.preloaded(tmp_path / "x.so"):
        assert os.environ["LD_PRELOAD"] == f"{tmp_path / 'x.so'} /opt/a.so"
    assert os.environ["LD_PRELOAD"] == "/opt/a.so"
    monkeypatch.delenv("LD_PRELOAD")
    with mkl_dispatch.preloaded(tmp_path / "x.so"):
        assert "LD_PRELOAD" in os.environ
    assert "LD_PRELOAD" not in os.environ
    with mkl_dispatch.preloaded(None):
        assert "LD_PRELOAD" not in os.environ


def test_the_setting_turns_it_off() -> None:
    assert mkl_dispatch.shim_for_this_host(enabled=False) is None


def _worker_report(settings: Settings) -> dict[str, object]:
    engine = make_engine(settings)
    upgrade_database(engine)
    engine.dispose()
    pool = WorkerPool(settings, target=reporting_worker)
    pool.start()
    try:
        deadline = time.monotonic() + 60
        while not (reports := list(Path(settings.artifacts_dir).glob("mkl-*.json"))):
            assert time.monotonic() < deadline, "the worker wrote no report"
            time.sleep(0.1)
        return json.loads(reports[0].read_text())
    finally:
        pool.stop(grace_s=10)


def host_needs_shim() -> bool:
    try:
        return mkl_dispatch.needs_shim(mkl_dispatch.CPUINFO.read_text())
    except OSError:
        return False


def test_workers_get_the_avx512_kernels_only_where_mkl_would_not_pick_them(
    tmp_path: Path,
) -> None:
    """On an AMD AVX-512 host the setting changes the workers' MKL kernels; elsewhere nothing."""
    with_shim = _worker_report(make_settings(tmp_path / "on", f"sqlite:///{tmp_path / 'on.db'}"))
    without = _worker_report(
        make_settings(tmp_path / "off", f"sqlite:///{tmp_path / 'off.db'}").model_copy(
            update={"mkl_amd_avx512": False}
        )
    )
    library = mkl_dispatch.shim_library()
    if host_needs_shim():
        # Here the library must exist: the install compiles it, and CI has a compiler.
        assert library is not None, "workers/native/mkl_vendor.c was not built"
        assert str(library) in str(with_shim["ld_preload"])
        assert str(library) not in str(without["ld_preload"])
        # MKL now picks another (the AVX-512) kernel family.
        assert with_shim["mkl_cpu_type"] != without["mkl_cpu_type"]
    else:
        # MKL already picks by features here (or has no AVX-512 to pick): nothing is preloaded.
        assert library is None or str(library) not in str(with_shim["ld_preload"])
        assert with_shim["mkl_cpu_type"] == without["mkl_cpu_type"]
    # Either way MKL's answers are right.
    for report in (with_shim, without):
        assert float(report["gemm_relative_error"]) < 1e-5
        assert float(report["solve_residual"]) < 1e-4
    # The parent's own environment is as it was.
    assert library is None or str(library) not in os.environ.get("LD_PRELOAD", "")
