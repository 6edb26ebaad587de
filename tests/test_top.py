"""Cached-token top-k fine-tuning (`vitzoo.top`), for every family: training the top k blocks on cached tokens equals
fastai's uncached `freeze_to` training of the same blocks; the trained full model predicts what the cached path does;
the cache is reused only while it is current; disk caches, views, freezing, LoRA, layer decay and bf16 carry over;
bad input is refused by vitzoo itself, naming the value and the fix.

Tolerances (each one can fail):
- float32 cache vs uncached training: rtol 1e-5, atol 1e-6 on every loss and weight (bit-equal today).
- float32 cache, end to end vs cached predictions: rtol 1e-5, atol 1e-5.
- bfloat16 cache: the cache is exactly the float32 tokens rounded to bfloat16 (checked bit for bit); the first step's
  loss (before any update: only the rounding differs) stays within `BF16_FIRST_ATOL` of the uncached run, the 6 steps'
  training and validation losses within `BF16_LOSS_ATOL` (the two trajectories drift apart a little with each
  update), and the end-to-end logits within `BF16_PRED_ATOL` of the cached-path ones. The bounds are 3-5x the largest
  difference measured over 7 families x 4 seeds (in the comments); a cache of the wrong tokens misses them by far.
"""
import copy, gc, os, re, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')
from pathlib import Path
import numpy as np, pytest, torch
from torch import nn
from fastai.data.all import DataLoaders, Datasets, Categorize, Transform
from fastai.torch_core import set_seed
from fastai.callback.mixup import MixUp
from fastai.metrics import accuracy
from vitzoo.registry import DEFAULT_MODELS
from vitzoo.factory import tiny_model
from vitzoo.learner import vit_learner, vit_splitter, layer_decay_mults, LayerDecay, BF16Autocast
import vitzoo.top as top
from vitzoo.top import cache_tokens, TopBlocks, TopLearner, lower_tensors

N_TRAIN, N_VALID, BS = 30, 10, 8 # 30 % 8 != 0: the training loader drops a partial batch, the validation one keeps it
STEPS = 2 * (N_TRAIN // BS) # steps in the 2 epochs of the training comparisons
LR = 1e-2
BF16_FIRST_ATOL = 2e-3 # first-step loss (~1.1-1.4), bfloat16 tokens vs float32: measured <= 5.4e-4
BF16_LOSS_ATOL = 3e-2 # every training and validation loss of the 2 epochs: measured <= 1.2e-2
BF16_PRED_ATOL = 5e-3 # logits of the full float32 model vs the cached path on bfloat16 tokens: measured <= 9e-4

def _dls(seed=0, tfms=None):
    "Random 32 px images in 3 classes as fastai Datasets split 30/10 (so transforms with `split_idx=0` touch training batches only)"
    set_seed(seed) # the loaders' shuffling generators are seeded from Python's `random`
    g = torch.Generator().manual_seed(seed)
    n = N_TRAIN + N_VALID
    xs, ys = torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 3
    items = list(range(n))
    dsets = Datasets(items, [[lambda i: xs[i]], [lambda i: int(ys[i]), Categorize()]], splits=[items[:N_TRAIN], items[N_TRAIN:]])
    return dsets.dataloaders(bs=BS, num_workers=0, device='cpu', after_batch=list(tfms or []))

def _model(name, seed=0, rescale=False):
    "A tiny `name` with 3 outputs (2 blocks, no dropout); DINOv3 without its train-time RoPE rescale unless `rescale`"
    set_seed(seed)
    ck = dict(pos_embed_rescale=None) if name == 'dinov3_vit' and not rescale else None
    return tiny_model(name, head=3, config_kwargs=ck)

def _learner(m, dls=None, **kw): return vit_learner(dls if dls is not None else _dls(), m, normalize=False, pretrained=False, **kw)

def _fit(learn, n, lr=LR):
    with learn.no_bar(), learn.no_logging(): learn.fit(n, lr)

def _close32(a, b, msg=''): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{msg}: {m}")

def _tensors(m): return {**dict(m.named_parameters()), **dict(m.named_buffers())}

def _snapshot(ps): return [p.detach().clone() for p in ps]
def _same(ps, saved): return all(torch.equal(p, s) for p, s in zip(ps, saved))

class RandScale(Transform):
    "Scale each training image by its own random factor: an augmentation drawn anew at every pass (`split_idx=0`)"
    split_idx, order = 0, 99
    def encodes(self, x):
        if not isinstance(x, torch.Tensor) or x.ndim != 4: return x # the labels pass through
        return x * (1 + 0.2 * torch.randn(len(x), 1, 1, 1))

# --- 1-2. Correctness: cached training == fastai's uncached freeze_to training; the trained model predicts end to end

def _uncached(m0, dls, st, k, epochs=2):
    "fastai's own training of the top `k` blocks, norm and head: the whole model runs every step, the rest frozen"
    m = copy.deepcopy(m0)
    dls.train.rng.setstate(st)
    learn = _learner(m, dls)
    learn.splitter = lambda mm: vit_splitter(mm, len(mm.blocks)) # stem | each block | norm + head
    learn.freeze_to(len(m.blocks) + 1 - k)
    set_seed(1)
    _fit(learn, epochs)
    return learn

def _cached(m0, dls, st, k, dtype, epochs=2):
    m = copy.deepcopy(m0)
    dls.train.rng.setstate(st) # the cached training loader starts from dls.train's shuffling state, as the uncached one
    learn = _learner(m, dls)
    tl = learn.top_learner(k, dtype=dtype, progress=False)
    set_seed(1)
    _fit(tl, epochs)
    return learn, tl

CASES = [(n, k) for n in DEFAULT_MODELS for k in (1, 2)] + [('vanilla_vit', 0)] # tiny models have 2 blocks: k=2 is all of them

@pytest.mark.parametrize('name,k', CASES)
def test_matches_uncached_training(name, k):
    dls, m0 = _dls(), _model(name)
    st = dls.train.rng.getstate()
    ref = _uncached(m0, dls, st, k)
    learn, tl = _cached(m0, dls, st, k, torch.float32)
    m, start = learn.model, len(m0.blocks) - k
    assert isinstance(tl, TopLearner) and tl.full_model is m and learn.token_cache.start == start
    assert learn.token_cache.train.dtype == torch.float32
    # the same steps, the same (smoothed) training losses and validation losses
    assert len(tl.recorder.losses) == len(ref.recorder.losses) == STEPS
    _close32(torch.stack(tl.recorder.losses), torch.stack(ref.recorder.losses), 'training losses')
    _close32(torch.tensor(tl.recorder.values), torch.tensor(ref.recorder.values), 'validation losses')
    # every final weight, and the stem and lower blocks bit-unchanged
    now, want, before = _tensors(m), _tensors(ref.model), _tensors(m0)
    assert now.keys() == want.keys() == before.keys()
    for n, t in now.items(): _close32(t, want[n], n)
    lower = {id(t) for t in lower_tensors(m, start)}
    assert lower and all(torch.equal(t, before[n]) for n, t in now.items() if id(t) in lower)
    # every trained part did train
    for i in range(start, len(m.blocks)):
        assert not _same(m.blocks[i].parameters(), list(m0.blocks[i].parameters())), f"block {i} did not train"
    assert not _same(m.head.parameters(), list(m0.head.parameters())) and not _same(m.norm.parameters(), list(m0.norm.parameters()))
    # the full model, updated in place, predicts end to end what the cached path predicts
    p_cached, y_cached = tl.get_preds()
    p_full, y_full = learn.get_preds()
    assert torch.equal(y_cached, y_full) and p_full.shape == (N_VALID, 3)
    torch.testing.assert_close(p_full, p_cached, rtol=1e-5, atol=1e-5)

@pytest.mark.parametrize('name', DEFAULT_MODELS)
def test_bf16_cache(name):
    dls, m0 = _dls(), _model(name)
    st = dls.train.rng.getstate()
    ref = _uncached(m0, dls, st, 1)
    learn, tl = _cached(m0, dls, st, 1, torch.bfloat16) # the default storage type
    c = learn.token_cache
    # bit for bit the float32 tokens rounded to bfloat16 (the lower blocks are unchanged by training)
    c32 = cache_tokens(learn.model, dls, 1, dtype=torch.float32, progress=False)
    assert c.train.dtype == c.valid.dtype == torch.bfloat16 and c.nbytes * 2 == c32.nbytes
    assert torch.equal(c.train, c32.train.bfloat16()) and torch.equal(c.valid, c32.valid.bfloat16())
    assert not torch.equal(c.train.float(), c32.train) # rounding happened: the comparison below is not float32 vs float32
    diff = (torch.stack(tl.recorder.losses) - torch.stack(ref.recorder.losses)).abs()
    assert diff[0] <= BF16_FIRST_ATOL, f"bf16 cache: the first loss differs by {diff[0]:.2e} from uncached training"
    assert diff.max() <= BF16_LOSS_ATOL, f"bf16 cache: training losses differ by {diff.max():.2e} from uncached training"
    vdiff = (torch.tensor(tl.recorder.values) - torch.tensor(ref.recorder.values)).abs().max()
    assert vdiff <= BF16_LOSS_ATOL, f"bf16 cache: validation losses differ by {vdiff:.2e} from uncached training"
    p_cached, _ = tl.get_preds()
    p_full, _ = learn.get_preds()
    err = (p_full - p_cached).abs().max().item()
    assert err <= BF16_PRED_ATOL, f"bf16 cache: end-to-end logits differ by {err:.2e} from the cached path's"

# --- 3. DINOv3's RoPE jitter (default pos_embed_rescale) in the top blocks

def _dinov3_top():
    "A DINOv3 with its default RoPE rescale, a cache of its stem output (k=2: the top blocks are all blocks) and its first images"
    m = _model('dinov3_vit', rescale=True)
    assert m.config.pos_embed_rescale is not None
    dls = _dls()
    c = cache_tokens(m, dls, 2, dtype=torch.float32, progress=False)
    x, _ = dls.train.new(shuffle=False, drop_last=False).one_batch()
    return m, TopBlocks(m, c), c.train[0, :len(x)], x

def test_dinov3_top_blocks_jitter_rope_as_the_full_model_does():
    m, tb, h, x = _dinov3_top()
    m.train(); tb.train()
    with torch.no_grad():
        set_seed(3); a = tb(h); b = tb(h)
        set_seed(3); y = m(x)
    assert not torch.equal(a, b), "train mode: each batch should draw its own RoPE rescale"
    _close32(a, y, 'TopBlocks vs the full model, train mode, same seed')
    m.eval(); tb.eval()
    with torch.no_grad(): a, b, y = tb(h), tb(h), m(x)
    assert torch.equal(a, b)
    _close32(a, y, 'TopBlocks vs the full model, eval mode')

@pytest.mark.parametrize('full_mode', ['train', 'eval'])
def test_dinov3_rope_follows_the_top_blocks_mode(full_mode):
    "Only TopBlocks' own mode decides: train jitters, eval does not, whatever mode the full model was left in"
    m, tb, h, x = _dinov3_top()
    getattr(m, full_mode)()
    with torch.no_grad():
        tb.train(); a, b = tb(h), tb(h)
        tb.eval(); c, d = tb(h), tb(h)
    assert not torch.equal(a, b), f"TopBlocks in train mode did not jitter RoPE (full model in {full_mode} mode)"
    assert torch.equal(c, d), f"TopBlocks in eval mode jittered RoPE (full model in {full_mode} mode)"
    assert m.training == m.backbone.rope_embeddings.training == (full_mode == 'train') # the full model's mode is left as it was

def test_dinov3_validation_is_deterministic():
    "A fresh learner (its model in train mode, as build_model leaves it): the top learner's predictions must not be jittered"
    learn = _learner(_model('dinov3_vit', rescale=True))
    tl = learn.top_learner(1, dtype=torch.float32, progress=False)
    p1, p2 = tl.get_preds()[0], tl.get_preds()[0]
    assert torch.equal(p1, p2), f"two validations of the same weights differ by {(p1 - p2).abs().max():.2e}"
    torch.testing.assert_close(learn.get_preds()[0], p1, rtol=1e-5, atol=1e-5)

# --- 4. Cache reuse and staleness

@pytest.fixture
def counted(monkeypatch):
    "Count the calls top_learner makes to cache_tokens"
    calls = []
    def f(*args, **kwargs):
        calls.append(args[2])
        return cache_tokens(*args, **kwargs)
    monkeypatch.setattr(top, 'cache_tokens', f)
    return calls

def test_cache_reused_while_current(counted):
    m = _model('dino_vit')
    learn = _learner(m)
    tl = learn.top_learner(1, progress=False)
    c = learn.token_cache
    assert counted == [1] and c.is_current(m)
    assert learn.top_learner(np.int64(1), progress=False).model.blocks[0] is m.blocks[1] # numpy ints are ints
    assert learn.token_cache is c and counted == [1], "same settings, same weights: the cache should be reused"
    # training the top block, norm and head leaves the tokens entering block 1 valid
    w = _snapshot(m.blocks[1].parameters())
    _fit(tl, 1)
    assert not _same(m.blocks[1].parameters(), w) and c.is_current(m)
    learn.top_learner(1, progress=False)
    assert learn.token_cache is c and counted == [1]
    # an in-place change of a top-block weight keeps it current too
    with torch.no_grad(): next(m.blocks[1].parameters()).add_(1.0)
    assert c.is_current(m)

@pytest.mark.parametrize('change', ['k', 'views', 'dtype', 'dls', 'stem', 'block below', 'optimizer step below', 'load_state_dict'])
def test_cache_rebuilt_when_stale(change, counted):
    dls = _dls(tfms=[RandScale()]) if change == 'views' else _dls()
    m = _model('vanilla_vit')
    learn = _learner(m, dls)
    learn.top_learner(1, progress=False)
    c = learn.token_cache
    kw, p = {}, None
    if change == 'k': kw = dict(k=2)
    elif change == 'views': kw = dict(views=2)
    elif change == 'dtype': kw = dict(dtype=torch.float32)
    elif change == 'dls': learn.dls = _dls(seed=1)
    elif change == 'load_state_dict':
        sd = copy.deepcopy(m.state_dict())
        sd['backbone.embeddings.cls_token'] += 1
        m.load_state_dict(sd)
    else:
        p = {'stem': m.backbone.embeddings.cls_token, 'block below': next(m.blocks[0].parameters()),
             'optimizer step below': next(m.blocks[0].parameters())}[change]
        g = torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) # not a constant: a LayerNorm before would cancel it
        if change == 'optimizer step below':
            p.grad = g
            torch.optim.SGD([p], lr=0.1).step()
        else:
            with torch.no_grad(): p.add_(g)
    if change in ('stem', 'block below', 'optimizer step below', 'load_state_dict'): assert not c.is_current(m)
    learn.top_learner(kw.pop('k', 1), progress=False, **kw)
    c2 = learn.token_cache
    assert c2 is not c and len(counted) == 2, f"{change}: the cache was reused"
    if change in ('stem', 'block below', 'optimizer step below', 'load_state_dict', 'dls'):
        assert not torch.equal(c2.train, c.train), f"{change}: the new cache holds the old tokens"

# fastai's optimizers write through `p.data`, which leaves `p._version` as it was: the fingerprint needs a checksum of the values

def test_cache_stale_after_fastai_trains_the_lower_blocks():
    "Fine-tuning the whole model with fastai, then fit_top again: the tokens must be recomputed"
    m = _model('vanilla_vit')
    learn = _learner(m)
    learn.top_learner(1, progress=False)
    c = learn.token_cache
    w = _snapshot(m.blocks[0].parameters())
    _fit(learn, 1) # the learner is unfrozen: every block trains
    assert not _same(m.blocks[0].parameters(), w)
    assert not c.is_current(m), "block 0 changed but the cache of the tokens it produces is still 'current'"
    learn.top_learner(1, progress=False)
    assert learn.token_cache is not c

def test_cache_stale_after_the_transforms_change():
    "A transform added to dls in place (here a forgotten Normalize) changes the tokens: the cache must be rebuilt"
    from fastai.vision.all import Normalize
    learn = _learner(_model('vanilla_vit'))
    learn.top_learner(1, progress=False)
    c = learn.token_cache
    learn.dls.add_tfms([Normalize.from_stats(0.5, 0.25)], 'after_batch')
    learn.top_learner(1, progress=False)
    assert learn.token_cache is not c, "reused tokens computed without the new Normalize"

# --- 5. Disk cache

def test_disk_cache(tmp_path):
    m, dls = _model('vanilla_vit'), _dls()
    mem = cache_tokens(m, dls, 1, progress=False)
    disk = cache_tokens(m, dls, 1, cache_dir=tmp_path, progress=False)
    paths = [Path(p) for p in disk.paths]
    assert len(paths) == 2 and sorted(tmp_path.iterdir()) == sorted(paths)
    assert sum(p.stat().st_size for p in paths) == disk.nbytes == mem.nbytes
    assert 'memory-mapped' in repr(disk) and 'in memory' in repr(mem)
    for a in ('train', 'valid', 'train_y', 'valid_y'): assert torch.equal(getattr(disk, a), getattr(mem, a)), a
    # the tensors are the files: a write shows in the file
    disk.train[0, 0, 0, 0] = 7.0
    f = next(p for p in paths if 'train' in p.name)
    assert torch.from_file(str(f), shared=False, size=disk.train.numel(), dtype=disk.train.dtype)[0].item() == 7.0
    del disk; gc.collect()
    assert not any(tmp_path.iterdir()), "the cache's files outlived it"

def test_disk_cache_through_the_learner(tmp_path):
    learn = _learner(_model('clip_vit'))
    tl = learn.fit_top(1, 1, LR, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 2 and learn.token_cache.paths
    learn.top_learner(2, progress=False) # replaces the cache: the old files go with it
    gc.collect()
    assert not any(tmp_path.iterdir())
    assert tl.get_preds()[0].isfinite().all() # Linux keeps an unlinked file's mapping readable

def test_too_big_cache_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(top, '_free_bytes', lambda folder: 1000)
    m, dls = _model('vanilla_vit'), _dls()
    # 40 images x 17 tokens x 32 x 2 bytes (bf16) = 43520 B: every training image is cached, even the dropped last batch
    with pytest.raises(MemoryError, match=r"needs 42\.5 KiB but only 1000 B is available in RAM: pass cache_dir=") as ei:
        cache_tokens(m, dls, 1, progress=False)
    assert 'bfloat16' not in str(ei.value) # it is bfloat16 already
    with pytest.raises(MemoryError, match=rf"needs 85\.0 KiB .*free in {re.escape(str(tmp_path))}: free space or choose another cache_dir, or dtype=torch.bfloat16"):
        cache_tokens(m, dls, 1, dtype=torch.float32, cache_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())

# --- 6. Views

def test_views_draw_augmentations_every_epoch():
    set_seed(0)
    m, dls = _model('vanilla_vit'), _dls(tfms=[RandScale()])
    learn = _learner(m, dls)
    tl = learn.top_learner(1, views=3, dtype=torch.float32, progress=False)
    c = learn.token_cache
    assert c.views == 3 and c.train.shape[:2] == (3, N_TRAIN)
    for a, b in [(0, 1), (0, 2), (1, 2)]: assert not torch.equal(c.train[a], c.train[b]), f"views {a} and {b} are the same"
    plain = cache_tokens(m, _dls(), 1, dtype=torch.float32, progress=False) # the same images, no augmentation
    assert torch.equal(c.valid, plain.valid) and torch.equal(c.train_y, plain.train_y) # validation is not augmented
    assert all(not torch.equal(c.train[v], plain.train[0]) for v in range(3))
    flat = c.train.reshape(3 * N_TRAIN, -1) # row v*N_TRAIN + i: view v of image i
    def drawn():
        "{image: view} for one epoch of the cached training loader; every row is one cached view of its image"
        got = {}
        for x, y in tl.dls.train:
            for row, lab in zip(x.reshape(len(x), -1), y):
                j = (flat == row).all(1).nonzero().flatten()
                assert len(j) == 1, "a batch row is not a cached view"
                v, i = divmod(int(j), N_TRAIN)
                assert i not in got and lab == c.train_y[i]
                got[i] = v
        return got
    e1, e2 = drawn(), drawn()
    assert len(e1) == len(e2) == N_TRAIN // BS * BS # shuffled, the last partial batch dropped
    assert len(set(e1.values())) > 1, "one epoch used a single view"
    assert any(e1[i] != e2[i] for i in e1.keys() & e2.keys()), "two epochs drew the same views"
    _fit(tl, 1)
    assert np.isfinite(tl.recorder.values[-1]).all()

def test_views_without_augmentation_warn():
    learn = _learner(_model('vanilla_vit'))
    with pytest.warns(UserWarning, match='views=2, but two passes over dls.train gave the same tokens'):
        learn.top_learner(1, views=2, progress=False)

# --- 7. Freezing flags and LoRA

def _flags(m): return {n: p.requires_grad for n, p in m.named_parameters()}

def test_frozen_learner_stays_frozen():
    m = _model('dino_v2_vit')
    learn = _learner(m)
    learn.freeze()
    flags = _flags(m)
    assert {n for n, r in flags.items() if r} == {n for n, _ in m.named_parameters() if n.startswith(('head.', 'backbone.layernorm.'))}
    w0, w1 = _snapshot(m.blocks[0].parameters()), _snapshot(m.blocks[1].parameters())
    tl = learn.fit_top(1, 1, LR, progress=False)
    assert _flags(m) == flags, "fit_top changed the learner's requires_grad flags"
    assert not _same(m.blocks[1].parameters(), w1) and _same(m.blocks[0].parameters(), w0) # the top learner trains its top block
    tl.freeze_to(1); tl.unfreeze(); tl.freeze()
    assert _flags(m) == flags, "the top learner's freeze_to changed the full model's flags"

def _frozen_top_fit(m, tl):
    "Fit the frozen `tl` one epoch: whether its top block, its norm and its head changed"
    tl.freeze()
    w, norm, head = _snapshot(m.blocks[1].parameters()), _snapshot(m.norm.parameters()), _snapshot(m.head.parameters())
    _fit(tl, 1)
    return not _same(m.blocks[1].parameters(), w), not _same(m.norm.parameters(), norm), not _same(m.head.parameters(), head)

def test_top_learner_freeze_trains_norm_and_head():
    m = _model('dino_v2_vit')
    learn = _learner(m)
    flags = _flags(m)
    tl = learn.top_learner(1, progress=False)
    assert _frozen_top_fit(m, tl) == (False, True, True), "freeze(): only the norm and the head should train"
    assert _flags(m) == flags
    w = _snapshot(m.blocks[1].parameters())
    tl.unfreeze(); _fit(tl, 1)
    assert not _same(m.blocks[1].parameters(), w)

# after training, a frozen parameter keeps its zeroed .grad, and fastai's optimizer still applies weight decay to it

def test_top_learner_freeze_after_training():
    m = _model('dino_v2_vit')
    learn = _learner(m)
    tl = learn.fit_top(1, 1, LR, progress=False) # every top parameter now has a .grad
    assert _frozen_top_fit(m, tl)[0] is False, "the frozen top learner changed its top block"

def test_lora_trains_only_the_top_adapters():
    pytest.importorskip('peft')
    from vitzoo.lora import adapter_parameters
    m = _model('deit_vit')
    learn = _learner(m, lora=4)
    base = {n: v.clone() for n, v in m.state_dict().items() if '.lora_' not in n and n.startswith('backbone.')}
    ad = [adapter_parameters(b) for b in m.blocks]
    assert all(ad)
    ad0 = [_snapshot(a) for a in ad]
    flags = _flags(m)
    learn.fit_top(1, 2, LR, progress=False)
    after = m.state_dict()
    assert all(torch.equal(v, after[n]) for n, v in base.items()), "a LoRA base weight changed"
    assert _same(ad[0], ad0[0]), "adapters below the top block changed"
    assert not _same(ad[1], ad0[1]), "the top block's adapters did not train"
    assert _flags(m) == flags and not any(p.requires_grad for n, p in m.named_parameters() if n.startswith('backbone.') and '.lora_' not in n)

# --- 8. What the top learner carries: layer decay, bf16, loss/optimizer/metrics; other callbacks warn

def _ld(learn): return [c for c in learn.cbs if isinstance(c, LayerDecay)]

def test_layer_decay_carried():
    learn = _learner(_model('vanilla_vit'), layer_decay=0.5)
    (ld,) = _ld(learn)
    assert ld.mults == layer_decay_mults(2, 0.5) == [0.125, 0.25, 0.5, 1.0] # stem, block 0, block 1, head
    for k in (0, 1, 2):
        tl = learn.top_learner(k, progress=False)
        (tld,) = _ld(tl)
        assert tld.mults == ld.mults[-(k+1):], k
    _fit(tl, 1) # k=2: the optimizer's groups got the mults
    assert len(tl.opt.param_groups) == 3
    assert tld.applied == pytest.approx([tld.applied[-1] * x for x in [0.25, 0.5, 1.0]])
    (tld,) = _ld(learn.top_learner(1, layer_decay=0.25, progress=False)) # the same cache
    assert tld.mults == [0.25, 1.0]
    assert not _ld(_learner(_model('vanilla_vit')).top_learner(1, progress=False)) # no layer decay, none added

# fastai keeps DataLoaders(device='cpu') as a str: BF16Autocast must not read dls.device.type

@pytest.mark.parametrize('device', ['cpu', torch.device('cpu')])
def test_bf16_learner_caches_under_autocast(device):
    m, dls = _model('vanilla_vit'), _dls()
    dls.device = device
    learn = _learner(m, dls).to_bf16()
    tl = learn.top_learner(1, dtype=torch.float32, progress=False)
    assert any(isinstance(c, BF16Autocast) for c in tl.cbs)
    c = learn.token_cache
    auto = cache_tokens(m, learn.dls, 1, dtype=torch.float32, autocast=True, progress=False)
    plain = cache_tokens(m, learn.dls, 1, dtype=torch.float32, progress=False)
    assert torch.equal(c.train, auto.train) and not torch.equal(c.train, plain.train)
    _fit(tl, 1)
    p, _ = tl.get_preds()
    assert p.dtype == torch.float32 and p.isfinite().all()
    learn.to_fp32()
    learn.top_learner(1, dtype=torch.float32, progress=False)
    assert learn.token_cache is not c, "a float32 learner reused the autocast cache"

def test_loss_optimizer_metrics_carried():
    from fastai.optimizer import SGD
    from fastai.losses import LabelSmoothingCrossEntropyFlat
    learn = _learner(_model('vanilla_vit'), loss_func=LabelSmoothingCrossEntropyFlat(), opt_func=SGD, metrics=accuracy, wd=0.05, moms=(0.9, 0.8, 0.9))
    tl = learn.top_learner(1, progress=False)
    assert tl.loss_func is learn.loss_func and tl.opt_func is SGD and tl.wd == 0.05 and tl.moms == (0.9, 0.8, 0.9)
    _fit(tl, 1)
    assert 'accuracy' in tl.recorder.metric_names and 0 <= tl.recorder.values[-1][-1] <= 1

def test_other_callbacks_warn():
    learn = _learner(_model('vanilla_vit'), cbs=[MixUp()])
    with pytest.warns(UserWarning, match=r"does not carry this learner's callbacks \['MixUp'\]"):
        tl = learn.top_learner(1, progress=False)
    assert not any(isinstance(c, MixUp) for c in tl.cbs)
    with warnings.catch_warnings(record=True) as w: # layer decay and bf16 are carried: no warning
        warnings.simplefilter('always')
        _learner(_model('vanilla_vit'), layer_decay=0.5).to_bf16().top_learner(1, progress=False)
    assert not [x for x in w if 'does not carry' in str(x.message)]

# --- 9. Refusals: raised by vitzoo itself, naming the value and the fix

def _refused(exc, match, f):
    with pytest.raises(exc, match=match) as ei: f()
    frame = Path(str(ei.traceback[-1].path)).resolve()
    assert frame.parent == Path(top.__file__).resolve().parent, f"raised from {frame}, not by vitzoo"
    return ei.value

@pytest.fixture
def small():
    m = _model('vanilla_vit')
    return m, _learner(m)

def _two_inputs():
    xs, items = torch.randn(12, 3, 32, 32), list(range(12))
    return Datasets(items, [[lambda i: xs[i]], [lambda i: xs[i]], [lambda i: i % 3, Categorize()]], n_inp=2,
                    splits=[items[:8], items[8:]]).dataloaders(bs=4, num_workers=0)

def _no_labels():
    xs = list(torch.randn(12, 3, 32, 32))
    return DataLoaders.from_dsets(xs[:8], xs[8:], bs=4, num_workers=0)

REFUSALS = [ # id, call(model, learner, tmp_path), exception, message
    ('k above the blocks', lambda m, l, t: l.top_learner(3), ValueError, r"k must be in \[0, 2\] \(the number of top blocks to train; the model has 2\), got 3"),
    ('k negative', lambda m, l, t: l.fit_top(-1, 1), ValueError, r"k must be in \[0, 2\] .*got -1"),
    ('k a bool', lambda m, l, t: l.top_learner(True), TypeError, r"k must be an int, got bool: True"),
    ('k a float', lambda m, l, t: cache_tokens(m, l.dls, 1.0), TypeError, r"k must be an int, got float: 1.0"),
    ('views 0', lambda m, l, t: l.top_learner(1, views=0), ValueError, r"views must be >= 1 \(passes over the training set\), got 0"),
    ('dtype float16', lambda m, l, t: l.top_learner(1, dtype=torch.float16), ValueError, r"dtype=torch.float16 is not a cache type: use torch.bfloat16 \(default\) or torch.float32"),
    ('cache_dir missing', lambda m, l, t: l.top_learner(1, cache_dir=t/'nope'), FileNotFoundError, r"cache_dir='.*nope' does not exist; create the folder first"),
    ('cache_dir a file', lambda m, l, t: cache_tokens(m, l.dls, 1, cache_dir=_file(t)), NotADirectoryError, r"cache_dir='.*f.txt' is a file, not a folder"),
    pytest.param('layer_decay 2', lambda m, l, t: l.top_learner(1, layer_decay=2, progress=False), ValueError, r"layer_decay must be a number in \(0, 1\], got 2",
                 id='layer_decay 2'),
    ('model not a VitZooModel', lambda m, l, t: cache_tokens(nn.Linear(3, 3), l.dls, 1), TypeError, r"cache_tokens needs a VitZooModel, got Linear"),
    ('dls not DataLoaders', lambda m, l, t: cache_tokens(m, [torch.zeros(3)], 1), TypeError, r"dls must be fastai DataLoaders \(with .train and .valid\), got list"),
    ('two inputs', lambda m, l, t: cache_tokens(m, _two_inputs(), 1), ValueError, r"dls has 2 inputs; token caching needs one input \(the images\)"),
    ('no labels', lambda m, l, t: cache_tokens(m, _no_labels(), 1, progress=False), ValueError, r"dls.train yields bare Tensor batches \(no labels\); token caching needs \(images, labels\) batches: one input and one target"),
]

def _file(t):
    (t/'f.txt').write_text('x')
    return t/'f.txt'

REFUSALS = [r if hasattr(r, 'values') else pytest.param(*r, id=r[0]) for r in REFUSALS]

@pytest.mark.parametrize('what,call,exc,msg', REFUSALS)
def test_refusals(what, call, exc, msg, small, tmp_path):
    m, learn = small
    _refused(exc, msg, lambda: call(m, learn, tmp_path))
    assert getattr(learn, 'token_cache', None) is None, "a refused call cached tokens"
    assert not any(tmp_path.glob('vitzoo-tokens-*'))

def test_progress_bar_outside_notebooks(capsys):
    learn = _learner(_model('vanilla_vit'))
    learn.fit_top(1, 1, LR) # the default progress=True, as in a script or the CLI
    assert 'Caching the tokens entering block 1 of 2' in capsys.readouterr().out

def test_refused_learner_model():
    learn = _learner(_model('vanilla_vit'))
    learn.model = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    _refused(TypeError, r"top_learner needs a learner whose model is a VitZooModel, got Sequential", lambda: learn.top_learner(1))
