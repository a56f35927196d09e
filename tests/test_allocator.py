"""voxa.allocator: glibc's malloc set up for CTranslate2, once per process, and left alone when
the user chose otherwise. Each case runs in a fresh interpreter (the settings are per process)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="glibc only")

# 256 MB allocated and freed: glibc's defaults give it back to the kernel at once (an mmap of its
# own), voxa's settings keep it for the next batch. Prints whether tune() took, then the MB
# resident after the free minus before the allocation.
PROBE = """
import numpy as np, voxa.allocator as a
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
took = a.tune() if {tune} else False
before = rss()
x = np.ones(64 * 2**20, np.float32); del x
print(took, round(rss() - before))
"""


def plain_env() -> dict[str, str]:
    """This environment without any malloc settings of the user's (or of voxa's switch)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "VOXA_MALLOC"))}


def probe(tune: bool = True, **env) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(tune=tune)], env=plain_env() | env,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_working_memory_stays_for_the_next_batch():
    took, kept = probe()
    assert took and kept > 200  # 256 MB allocated, still resident after the free
    took, kept = probe(tune=False)
    assert not took and kept < 50  # glibc's defaults: unmapped at once


@pytest.mark.parametrize("env", [{"VOXA_MALLOC": "default"}, {"MALLOC_ARENA_MAX": "4"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}])
def test_the_users_own_settings_are_left_alone(env):
    took, kept = probe(**env)
    assert not took and kept < 50


def test_a_loaded_whisper_model_has_set_it_up():
    code = "import voxa, voxa.allocator as a; print(a.active()); voxa.load_model('whisper-tiny.en'); print(a.active())"
    r = subprocess.run([sys.executable, "-c", code], env=plain_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["False", "True"]
