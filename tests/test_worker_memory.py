"""The worker's allocator settings (issue 20, benchmarks/README.md "Worker memory")."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What the worker's start does (models.asr first, an engine later), then what MKL says: its
# fast memory manager is off when mkl_serv_get_fast_mm_status() is 1 (-1: the library does
# not export it, a build without MKL).
_MKL_PROBE = """
import ctypes, os
import models.asr  # noqa: F401
import ctranslate2  # noqa: F401
lib = next(ln.split()[-1] for ln in open("/proc/self/maps") if "libctranslate2" in ln)
status = getattr(ctypes.CDLL(lib), "mkl_serv_get_fast_mm_status", None)
print(os.environ.get("MKL_DISABLE_FAST_MM"), -1 if status is None else status())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("keep_pool", [False, True])
def test_the_speech_engine_allocates_without_mkls_buffer_pool(keep_pool):
    """Importing models.asr turns MKL's buffer pool off for the ctranslate2 loaded after it
    (the pool kept freed encode and beam-search buffers from the trims); AVINDEX_MKL_POOL=1
    keeps it, as benchmarks.first_hit --mkl-pool measures it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MKL_DISABLE_FAST_MM", "AVINDEX_MKL_POOL")}
    if keep_pool:
        env["AVINDEX_MKL_POOL"] = "1"
    out = subprocess.run([sys.executable, "-c", _MKL_PROBE], capture_output=True, text=True,
                         check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    flag, status = out.stdout.split()
    assert flag == ("None" if keep_pool else "1")
    if status != "-1":
        assert int(status) == (0 if keep_pool else 1)


def test_the_spawned_worker_loads_ctranslate2_only_after_models_asr():
    """What a spawned worker imports before worker_main runs (app.worker and what it
    imports) must not load ctranslate2: worker_main imports models.asr first, which is
    what turns MKL's pool off, and MKL reads that only when ctranslate2 is loaded."""
    probe = "import sys, app.worker; print('ctranslate2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False"]
