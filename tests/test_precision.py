"""Mixed precision of vitzoo's fastai learner: bfloat16 on CPU (with and without oneDNN bfloat16) and CUDA, float16 with a
loss scaler on CUDA, float16 refused on a CPU; and Lightning's `precision='bf16-mixed'` with a vitzoo model on a CPU.

The CUDA tests run when `torch.cuda.is_available()` and skip otherwise; `bench/gpu_checks.py` runs them, with a step-time
comparison, on a GPU machine."""
import copy, warnings
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.data.core import DataLoaders
from fastai.vision.data import ImageDataLoaders
from fastai.vision.augment import Resize
from fastai.metrics import accuracy
import vitzoo.learner
from vitzoo.data import digits_folder
from vitzoo.factory import tiny_model
from vitzoo.fast import bf16_supported
from vitzoo.learner import BF16Autocast, ViTLearner, vit_learner

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (run bench/gpu_checks.py on a GPU machine)')


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    "Real digits, 12 per class, as 32-pixel images"
    return digits_folder(tmp_path_factory.mktemp('digits'), n_per_class=12, valid_pct=0.25)

def _dls(path, device=None):
    return ImageDataLoaders.from_folder(path, valid='valid', item_tfms=Resize(32), bs=16, num_workers=0, device=device)

class Spy(Callback):
    "Record the dtype the first block's first linear layer computes in, the loss of every batch, and the loss scale"
    order = 100
    def before_fit(self):
        self.dtypes, self.losses, self.scales = set(), [], []
        model = getattr(self.learn.model, 'module', self.learn.model)
        lin = next(m for m in model.blocks[0].modules() if isinstance(m, nn.Linear))
        self.h = lin.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype) if self.training else None)
    def after_loss(self): self.losses.append(self.loss.item())
    def after_step(self):
        if getattr(self.learn, 'scaler', None) is not None: self.scales.append(self.learn.scaler.get_scale())
    def after_fit(self): self.h.remove()

def _fit(learn, n=1):
    "Fit `n` epochs; (the Spy, the weights before, the weights after)"
    before = copy.deepcopy(learn.model.state_dict())
    with learn.no_logging(), learn.no_bar(): learn.fit(n, 1e-3, cbs=[spy := Spy()])
    return spy, before, learn.model.state_dict()

def _check_trained(spy, before, after, dtype):
    assert spy.dtypes == {dtype}, spy.dtypes                            # the forward really ran in `dtype`
    assert {v.dtype for v in after.values() if v.is_floating_point()} == {torch.float32}  # float32 master weights
    moved = [k for k in before if not torch.equal(before[k], after[k].to(before[k].device))]
    assert any(k.startswith('backbone.') for k in moved) and any(k.startswith('head.') for k in moved), moved
    assert spy.losses and all(torch.isfinite(torch.tensor(spy.losses))), spy.losses

def test_bf16_cpu(digits):
    torch.manual_seed(0)
    learn = vit_learner(_dls(digits), tiny_model('vanilla_vit'), metrics=accuracy).to_bf16()
    bf16_cbs = [cb for cb in learn.cbs if isinstance(cb, BF16Autocast)]
    assert len(bf16_cbs) == 1
    _check_trained(*_fit(learn), torch.bfloat16)
    preds, targs = learn.get_preds()
    assert preds.dtype == torch.float32 and torch.allclose(preds.sum(1), torch.ones(len(preds)), atol=1e-5)
    learn.to_fp32()
    assert not any(isinstance(cb, (BF16Autocast, MixedPrecision)) for cb in learn.cbs)
    spy, *_ = _fit(learn)
    assert spy.dtypes == {torch.float32}

def _grads(model, x, y, bf16:bool):
    model.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16): loss = F.cross_entropy(model(x), y)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])

def test_bf16_gradients_match_fp32():
    "One batch's gradients under bfloat16 autocast point the same way as in float32, with oneDNN and with the fallback kernels"
    torch.manual_seed(0)
    m = tiny_model('vanilla_vit', head=3).train()
    for mod in m.modules():
        if isinstance(mod, nn.Dropout): mod.p = 0.
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))
    g32 = _grads(m, x, y, False)
    g16 = _grads(m, x, y, True)
    with torch.backends.mkldnn.flags(enabled=False): g16_fallback = _grads(m, x, y, True)  # a CPU without oneDNN bf16 takes this path
    for g in (g16, g16_fallback):
        assert g.dtype == torch.float32 and torch.isfinite(g).all()
        assert F.cosine_similarity(g, g32, dim=0) > 0.99, F.cosine_similarity(g, g32, dim=0)

def test_bf16_cpu_without_onednn_bf16(digits, no_bf16):
    "On a CPU without oneDNN bfloat16 (simulated), to_bf16 says it will be slow, and still trains correctly on the fallback kernels"
    torch.manual_seed(0)
    learn = vit_learner(_dls(digits), tiny_model('dino_vit'))
    with pytest.warns(UserWarning, match=r'no oneDNN bfloat16 kernels.*correct but much slower.*to_fp32'): learn.to_bf16()
    with torch.backends.mkldnn.flags(enabled=False): _check_trained(*_fit(learn), torch.bfloat16)

def test_fp16_refused_on_cpu(digits):
    learn = vit_learner(_dls(digits), tiny_model('vanilla_vit'))
    with pytest.raises(ValueError, match=r"to_fp16\(\) needs a CUDA GPU.*'cpu'.*learn.to_bf16\(\)") as e: learn.to_fp16()
    assert '/vitzoo/' in e.traceback[-1].path.as_posix()  # raised by vitzoo itself
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)  # nothing added
    with pytest.raises(TypeError, match=r"to_fp16\(\) got \['amp_mode'\].*to_bf16"): learn.to_fp16(amp_mode='bf16')

def test_fastai_fp16_on_cpu_is_fp32():
    "Why vitzoo refuses: fastai's own MixedPrecision on a CPU warns and trains in float32 (if this fails, fastai changed: revisit)"
    cb = MixedPrecision()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        cb.learn = type('L', (), {})()
        cb.before_fit()
    if torch.cuda.is_available(): pytest.skip('a GPU is present: fastai autocasts on it')
    assert any('CUDA is not available' in str(x.message) for x in w), [str(x.message) for x in w]
    with cb.autocast: assert not torch.is_autocast_enabled('cpu') and (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.float32

def test_lightning_bf16_mixed_cpu(tmp_path):
    "Lightning's `precision='bf16-mixed'` on a CPU autocasts a vitzoo model's forward to bfloat16 and keeps float32 weights"
    L = pytest.importorskip('lightning')
    warnings.filterwarnings('ignore', message='.*does not have many workers.*')
    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.dtypes = tiny_model('dinov2_vit', head=3, backbone_dropout=0.1), set()
            lin = next(m for m in self.model.blocks[0].modules() if isinstance(m, nn.Linear))
            lin.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype))
        def training_step(self, b, i):
            loss = F.cross_entropy(self.model(b[0]), b[1])
            self.log('loss', loss)
            return loss
        def configure_optimizers(self): return torch.optim.AdamW(self.parameters(), lr=1e-3)
    torch.manual_seed(0)
    lit = Lit()
    before = copy.deepcopy(lit.state_dict())
    ds = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,)))
    trainer = L.Trainer(max_epochs=1, accelerator='cpu', precision='bf16-mixed', logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(lit, torch.utils.data.DataLoader(ds, batch_size=8))
    assert lit.dtypes == {torch.bfloat16}
    after = lit.state_dict()
    assert {v.dtype for v in after.values() if v.is_floating_point()} == {torch.float32}
    assert not torch.equal(before['model.head.linear.weight'], after['model.head.linear.weight'])
    assert not torch.equal(before['model.backbone.embeddings.patch_embeddings.projection.weight'], after['model.backbone.embeddings.patch_embeddings.projection.weight'])
    assert torch.isfinite(trainer.callback_metrics['loss'])

# --- CUDA: run on a GPU machine (bench/gpu_checks.py) ------------------------------------------------------------------
@cuda
def test_fp16_cuda(digits):
    "float16 autocast with fastai's loss scaler on the GPU: fp16 forward, float32 weights, a loss scale, float32 predictions"
    torch.manual_seed(0)
    learn = vit_learner(_dls(digits, device='cuda'), tiny_model('vanilla_vit')).to_fp16()
    assert sum(isinstance(cb, MixedPrecision) for cb in learn.cbs) == 1
    spy, before, after = _fit(learn, 2)
    _check_trained(spy, before, after, torch.float16)
    assert spy.scales and all(s > 0 for s in spy.scales), spy.scales   # the scaler ran (scale 65536 halves on overflow)
    assert next(learn.model.parameters()).device.type == 'cuda'
    preds, _ = learn.get_preds()
    assert preds.dtype == torch.float32 and torch.isfinite(preds).all()
    learn.to_bf16()   # switching replaces fp16: one precision callback at a time
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.cbs)

@cuda
def test_bf16_cuda(digits):
    torch.manual_seed(0)
    learn = vit_learner(_dls(digits, device='cuda'), tiny_model('dinov2_reg_vit'))
    if not torch.cuda.is_bf16_supported():
        with pytest.raises(ValueError, match='has no bfloat16.*to_fp16'): learn.to_bf16()
        return
    learn.to_bf16()
    _check_trained(*_fit(learn, 2), torch.bfloat16)
    preds, _ = learn.get_preds()
    assert preds.dtype == torch.float32 and torch.isfinite(preds).all()

@cuda
def test_lightning_16_mixed_cuda(tmp_path):
    "Lightning's `precision='16-mixed'` on a GPU: float16 forward with a gradient scaler, float32 weights"
    L = pytest.importorskip('lightning')
    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model, self.dtypes = tiny_model('vanilla_vit', head=3), set()
            lin = next(m for m in self.model.blocks[0].modules() if isinstance(m, nn.Linear))
            lin.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype))
        def training_step(self, b, i): return F.cross_entropy(self.model(b[0]), b[1])
        def configure_optimizers(self): return torch.optim.AdamW(self.parameters(), lr=1e-3)
    lit = Lit()
    ds = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,)))
    trainer = L.Trainer(max_epochs=1, accelerator='gpu', devices=1, precision='16-mixed', logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(lit, torch.utils.data.DataLoader(ds, batch_size=8))
    assert lit.dtypes == {torch.float16} and trainer.precision_plugin.scaler is not None
    assert {p.dtype for p in lit.parameters()} == {torch.float32}
