"""Shared test set-up: simulate a CPU without oneDNN bfloat16 (an AVX2 laptop, say) on any machine.

`VITZOO_NO_BF16=1 pytest ...` runs the whole session as if this CPU had no oneDNN bfloat16 support; the `no_bf16`
fixture (and the `no_bf16_patch` context manager) does the same for one test. Notebooks run in this process
(nbdev's `test_nb`), so they see the patch too.
"""
import os, contextlib
import pytest
import torch

NO_BF16_MSG = "bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq (simulated by vitzoo's tests)"

def _refuse_bf16(op, name):
    "`op`, raising as torch does on a CPU without oneDNN bfloat16 when given a bfloat16 tensor"
    def f(*args, **kwargs):
        if any(isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16 for a in args): raise RuntimeError(f"{name}: {NO_BF16_MSG}")
        return op(*args, **kwargs)
    return f

@contextlib.contextmanager
def no_bf16_patch():
    "Report oneDNN bfloat16 as absent (torch's own check, which vitzoo consults) and make oneDNN's bf16 linear kernels fail"
    ns = torch.ops.mkldnn
    names = ('_is_mkldnn_bf16_supported', '_reorder_linear_weight', '_linear_pointwise')
    saved = {n: getattr(ns, n) for n in names}
    setattr(ns, '_is_mkldnn_bf16_supported', lambda: False)
    for n in names[1:]: setattr(ns, n, _refuse_bf16(saved[n], f"mkldnn::{n}"))
    try: yield
    finally:
        for n, op in saved.items(): setattr(ns, n, op)

@pytest.fixture
def no_bf16():
    "Run the test as on a CPU without oneDNN bfloat16"
    with no_bf16_patch(): yield

_session_patch = None

def pytest_configure(config):
    global _session_patch
    if os.environ.get('VITZOO_NO_BF16') == '1':
        _session_patch = no_bf16_patch()
        _session_patch.__enter__()

def pytest_unconfigure(config):
    if _session_patch is not None: _session_patch.__exit__(None, None, None)

def pytest_report_header(config):
    if os.environ.get('VITZOO_NO_BF16') == '1': return "VITZOO_NO_BF16=1: oneDNN bfloat16 reported absent (torch.ops.mkldnn._is_mkldnn_bf16_supported() -> False)"
