"""vitzoo on a CPU without oneDNN bfloat16 (an AVX2 laptop, say), simulated on any machine by `conftest.no_bf16_patch`.

The whole suite can run that way with `VITZOO_NO_BF16=1 pytest`; this file runs the notebooks whose paths depend on
the capability (`09_fast`, `06_probe`) that way in every run, plus direct checks of the fallback."""
import warnings
import pytest
import torch
import torch.nn.functional as F
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb
from conftest import no_bf16_patch
from vitzoo.factory import tiny_model
from vitzoo.fast import bf16_supported, can_pack, fast_inference, PackedLinear
from vitzoo.probe import default_bf16_mode, extract_embeddings

def test_patch_is_real(no_bf16):
    "The patch makes torch report no bf16 and makes oneDNN's bf16 linear kernels fail as they do on such a CPU"
    assert torch.ops.mkldnn._is_mkldnn_bf16_supported() is False and not bf16_supported() and not can_pack(torch.bfloat16)
    with pytest.raises(RuntimeError, match='bf16 path needs the cpu support'):
        torch.ops.mkldnn._reorder_linear_weight(torch.randn(4, 3).bfloat16(), None)
    assert torch.ops.mkldnn._reorder_linear_weight(torch.randn(4, 3), None).shape == (4, 3)  # float32 still packs

def test_patch_restores():
    with no_bf16_patch(): pass
    assert bf16_supported() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if bf16_supported(): torch.ops.mkldnn._reorder_linear_weight(torch.randn(4, 3).bfloat16(), None)

def test_fast_inference_falls_back(no_bf16):
    m = tiny_model('dinov3_vit').eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(UserWarning, match=r'no torch.bfloat16 kernels on this CPU.*fast.packed=False.*try dtype=torch.float32'):
        fast = fast_inference(m)
    assert (fast.packed, fast.fast_dtype, fast.fused_gelu) == (False, torch.bfloat16, 0)
    assert not any(isinstance(l, PackedLinear) for l in fast.modules())
    with torch.inference_mode(): out, ref = fast(x, output_embeddings=True)['embeddings'], m(x, output_embeddings=True)['embeddings']
    assert out.dtype == torch.bfloat16 and F.cosine_similarity(out.float(), ref).min() > 0.999
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert fast_inference(m, torch.float32).packed  # float32 needs no bf16: packed, no warning
    with pytest.raises(ValueError, match='oneDNN has no torch.bfloat16 kernels'): PackedLinear(torch.nn.Linear(4, 4).bfloat16())

def test_extract_embeddings(no_bf16):
    m = tiny_model('vanilla_vit').eval()
    x = torch.randn(5, 3, 32, 32)
    assert default_bf16_mode(torch.device('cpu')) == 'cast'
    ref = extract_embeddings(m, x, progress=False).feats
    auto = extract_embeddings(m, x, bf16=True, progress=False).feats
    with pytest.warns(UserWarning, match='fast.packed=False'): fast = extract_embeddings(m, x, bf16='fast', progress=False).feats
    for f in (auto, fast): assert f.dtype == torch.float32 and F.cosine_similarity(f, ref).min() > 0.999

cfg = get_config()
@pytest.mark.parametrize('nb', ['09_fast.ipynb', '06_probe.ipynb'])
def test_notebook_without_bf16(nb, no_bf16):
    ok, secs = run_nb(cfg.nbs_path/nb, skip_flags=cfg.tst_flags.split(), basepath=cfg.config_path)
    assert ok, f'{nb} failed without bf16 support (traceback above)'
