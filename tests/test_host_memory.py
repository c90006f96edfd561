"""The allocator switch of the CPU fast path: on for every command, off on request, recorded, harmless."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from smisbench.host_memory import host_malloc_mode, keep_freed_memory

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")


def _in_fresh_process(code: str, env_extra: dict[str, str] | None = None) -> str:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


@glibc
def test_switch_is_made_once_and_reported():
    out = _in_fresh_process(
        "from smisbench.host_memory import keep_freed_memory as k, host_malloc_mode as m\n"
        "before = m(); first = k(); second = k(); print(before, first, second, m())")
    assert out == "system reuse reuse reuse"


@glibc
def test_opt_out_leaves_the_c_library_alone():
    out = _in_fresh_process("from smisbench.host_memory import keep_freed_memory as k; print(k())",
                            {"SMISBENCH_HOST_MALLOC": "system"})
    assert out == "system"


@glibc
def test_inference_copy_and_provenance_carry_the_mode():
    out = _in_fresh_process(
        "import torch\n"
        "from smisbench.models.registry import build_model\n"
        "from smisbench.models.inference import inference_copy\n"
        "from smisbench.provenance import environment\n"
        "inference_copy(build_model('vspade', 'synthetic'))\n"
        "print(environment('cpu')['host_malloc'])")
    assert out == "reuse"


def test_numbers_do_not_change_under_the_switch():
    """Large tensors computed before and after the switch in this process are identical."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2048, 4096, generator=g), torch.randn(4096, 1024, generator=g)  # 32 and 16 MiB
    before = (a @ b).sin_()
    keep_freed_memory()
    after = (a @ b).sin_()
    assert torch.equal(before, after)
    assert host_malloc_mode() in {"reuse", "system"}


_MMAPPED_BYTES = """
import ctypes, torch
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = Info
def mmapped_with_a_tensor(mib=64):
    t = torch.ones(mib * 2**18)  # float32: mib MiB
    return libc.mallinfo2().hblkhd >= mib * 2**20
"""


@glibc
def test_reuse_keeps_large_tensors_off_mmap_and_system_block_puts_them_back():
    """glibc's own count of mmapped bytes (mallinfo2) shows which allocator behaviour is in force."""
    out = _in_fresh_process(_MMAPPED_BYTES + (
        "from smisbench.host_memory import keep_freed_memory, system_malloc, host_malloc_mode\n"
        "before = mmapped_with_a_tensor()\n"
        "keep_freed_memory()\n"
        "reuse = mmapped_with_a_tensor()\n"
        # larger than anything freed before: a freed heap block cannot serve it (those stay reusable)
        "with system_malloc():\n"
        "    inside = mmapped_with_a_tensor(256)\n"
        "after = mmapped_with_a_tensor()\n"
        "print(before, reuse, inside, after, host_malloc_mode())"))
    assert out == "True False True False reuse"


@glibc
def test_reuse_never_trims_the_heap_even_with_gigabytes_free_at_its_top():
    """Batch-16 activations at 256x256 are 1.3 GB each: freeing two at the heap's top must not hand them
    back (glibc's largest int threshold, 2 GiB, would), or the next forward page-faults them in again."""
    out = _in_fresh_process(_MMAPPED_BYTES + (
        "from smisbench.host_memory import keep_freed_memory\n"
        "keep_freed_memory()\n"
        "libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]\n"
        "libc.free.argtypes = [ctypes.c_void_p]\n"
        "block = libc.malloc(3 * 2**30)  # 3 GiB of address space at the heap's top, never touched\n"
        "grown = libc.mallinfo2().arena\n"
        "libc.free(block)\n"
        "print(grown >= 3 * 2**30, libc.mallinfo2().arena == grown)"))
    assert out == "True True"
