"LoRA through peft for every family: adapters train alone, survive fastai's freeze/unfreeze/fine_tune, save (adapters and merged) and reload bit-exact."
import copy, warnings
import pytest
import torch
peft = pytest.importorskip('peft')
from fastai.vision.all import DataLoaders, Datasets, Categorize
from vitzoo.registry import DEFAULT_MODELS
from vitzoo.factory import tiny_model
from vitzoo.save import save_model, load_model, CheckpointError
from vitzoo.lora import add_lora, has_lora, adapter_parameters, trainable_parameters
from vitzoo.learner import vit_learner, vit_splitter

warnings.filterwarnings('ignore', message='.*Already (un)?merged.*')
X = torch.randn(2, 3, 32, 32)

def _trained(m, seed=0):
    "`m` with random adapter (and head) values, as after training"
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_parameters(m) + list(m.head.parameters()): p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m

def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(v, sb[k]) for k, v in sa.items())

@pytest.mark.parametrize('name', DEFAULT_MODELS)
def test_save_load_bit_exact(name, tmp_path):
    m = tiny_model(name, head=3).eval()
    base = copy.deepcopy(m)
    _trained(add_lora(m, 4, targets='qkvo', norms=True))
    with torch.no_grad():
        for p in m.backbone.parameters():
            if p.requires_grad and p.ndim == 1 and not any(p is q for q in adapter_parameters(m)): p.add_(0.01) # norms trained
    y = m(X)
    assert not torch.equal(y, base(X))
    m.save_pretrained(tmp_path/'a', lora='adapters')
    m2 = load_model(tmp_path/'a', base=copy.deepcopy(base))
    assert _same(m2, m) and torch.equal(m2(X), y)
    m2b = load_model(tmp_path/'a', base=copy.deepcopy(base), dtype='bfloat16')
    assert next(m2b.parameters()).dtype == torch.bfloat16 and has_lora(m2b)
    assert trainable_parameters(m2) == trainable_parameters(m)
    # merged: a plain checkpoint equal to merge_and_unload, bit for bit
    save_model(m, tmp_path/'m', lora='merged')
    m3, ref = load_model(tmp_path/'m'), copy.deepcopy(m).merge_and_unload().eval()
    assert not has_lora(m3) and _same(m3, ref) and torch.equal(m3(X), ref(X))
    torch.testing.assert_close(m3(X), y, atol=1e-5, rtol=1e-4)
    assert has_lora(m) and torch.equal(m(X), y) # saving merged left m as it was
    # the adapters refuse another base
    other = copy.deepcopy(base)
    with torch.no_grad(): next(other.backbone.parameters()).add_(1e-3)
    with pytest.raises(CheckpointError, match='not the ones the LoRA adapters'): load_model(tmp_path/'a', base=other)

def test_adapters_folder_is_small_and_peft_readable(tmp_path):
    m = _trained(add_lora(tiny_model('vanilla_vit', head=3).eval(), 4))
    save_model(m, tmp_path/'a', lora='adapters')
    files = sorted(p.name for p in (tmp_path/'a').iterdir())
    assert files == ['adapter_config.json', 'adapter_model.safetensors', 'head.safetensors', 'vitzoo.json']
    cfg = peft.LoraConfig.from_pretrained(tmp_path/'a')
    assert cfg.r == 4
    # a full save into the same folder replaces the adapters' files, and the other way round
    save_model(copy.deepcopy(m).merge_and_unload(), tmp_path/'a')
    assert sorted(p.name for p in (tmp_path/'a').iterdir()) == ['config.json', 'model.safetensors', 'preprocessor_config.json', 'vitzoo.json']
    save_model(m, tmp_path/'a', lora='adapters')
    assert sorted(p.name for p in (tmp_path/'a').iterdir()) == files

def test_refusals(tmp_path):
    m = add_lora(tiny_model('vanilla_vit', head=3), 4)
    with pytest.raises(ValueError, match="lora='adapters'"): save_model(m, tmp_path/'x')
    with pytest.raises(ValueError, match='no LoRA adapters'): save_model(tiny_model('vanilla_vit'), tmp_path/'x', lora='merged')
    with pytest.raises(ValueError, match='modules_to_save'): add_lora(tiny_model('vanilla_vit'), peft.LoraConfig(modules_to_save=['head']))
    with pytest.raises(TypeError, match='rank'): add_lora(tiny_model('vanilla_vit'), 'big')
    m.merge_lora()
    with pytest.raises(ValueError, match='unmerge_lora'): save_model(m, tmp_path/'x', lora='adapters')
    save_model(m.unmerge_lora(), tmp_path/'x', lora='adapters')
    with pytest.raises(ValueError, match='pass load_model'): load_model(tmp_path/'x') # not a registry model: no default base
    with pytest.raises(ValueError, match='DINOv3ViTModel'): load_model(tmp_path/'x', base=tiny_model('dinov3_vit'))

def test_rest_of_vitzoo_on_a_lora_model():
    from vitzoo.attention import attention_maps
    m = _trained(add_lora(tiny_model('dino_v2_vit', head=3), 4)).eval()
    assert attention_maps(m, X).shape[0] == 2
    final, inter = m.forward_intermediates(X)
    assert len(inter) == len(m.blocks)
    ref = copy.deepcopy(m).merge_and_unload()
    torch.testing.assert_close(attention_maps(ref, X), attention_maps(m, X), atol=1e-5, rtol=1e-4)

def test_get_peft_model_works():
    m = tiny_model('clip_vit', head=3)
    pm = peft.get_peft_model(m, peft.LoraConfig(r=4, target_modules=['q_proj', 'v_proj'], modules_to_save=['head']))
    assert pm(X).shape == (2, 3)
    with pytest.raises(TypeError, match='merge_and_unload'): save_model(pm, 'unused')

# --- fastai: ViTLearner.freeze_to keeps base weights frozen on a LoRA model
def _dls(n=16, size=32):
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)
    items = list(range(n))
    dsets = Datasets(items, [[lambda i: xs[i]], [lambda i: int(ys[i]), Categorize()]], splits=[items[:12], items[12:]])
    return dsets.dataloaders(bs=4, num_workers=0, device='cpu')

@pytest.mark.parametrize('name', DEFAULT_MODELS)
def test_fine_tune_trains_only_adapters_and_head(name):
    m = add_lora(tiny_model(name, head=3), 4)
    base = {k: v.clone() for k, v in m.state_dict().items() if '.lora_' not in k and k.startswith('backbone.')}
    ad0 = [p.clone() for p in adapter_parameters(m)]
    head0 = [p.clone() for p in m.head.parameters()]
    learn = vit_learner(_dls(), m, normalize=False, freeze_backbone=True, layer_decay=0.8)
    # the splitter puts each block's adapters in its block's group
    groups = vit_splitter(m, block_groups=len(m.blocks))
    for i, b in enumerate(m.blocks):
        assert {id(p) for p in adapter_parameters(b)} <= {id(p) for p in groups[1 + i]}
    learn.freeze()
    assert trainable_parameters(m)['adapters'] == 0 and trainable_parameters(m)['base'] == 0 # frozen: the head alone
    learn.unfreeze()
    tp = trainable_parameters(m)
    assert tp['base'] == 0 and tp['adapters'] == sum(p.numel() for p in adapter_parameters(m))
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-2)
    after = m.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base.items()), 'a base weight changed'
    assert any(not torch.equal(a, b) for a, b in zip(ad0, adapter_parameters(m))), 'the adapters did not train'
    assert any(not torch.equal(a, b) for a, b in zip(head0, m.head.parameters())), 'the head did not train'
    assert trainable_parameters(m)['base'] == 0

def test_dora_and_rslora_configs_round_trip(tmp_path):
    for i, cfg in enumerate([peft.LoraConfig(r=4, use_dora=True), peft.LoraConfig(r=4, use_rslora=True, lora_alpha=16)]):
        m = tiny_model('deit_vit', head=3).eval()
        base = copy.deepcopy(m)
        _trained(add_lora(m, cfg))
        y = m(X)
        save_model(m, tmp_path/f'{i}', lora='adapters')
        m2 = load_model(tmp_path/f'{i}', base=base)
        assert _same(m2, m) and torch.equal(m2(X), y)
        assert torch.equal(m.merge_lora().unmerge_lora()(X), y)

def test_fine_tune_with_norms():
    from vitzoo.lora import norm_parameters
    m = add_lora(tiny_model('dinov3_vit', head=3), 4, norms=True)
    norm_ids = {id(p) for p in norm_parameters(m)}
    names = {n for n, p in m.named_parameters() if id(p) in norm_ids}
    base = {k: v.clone() for k, v in m.state_dict().items() if '.lora_' not in k and k.startswith('backbone.')}
    learn = vit_learner(_dls(), m, normalize=False, freeze_backbone=True)
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-2)
    after = m.state_dict()
    changed = {k for k, v in base.items() if not torch.equal(v, after[k])}
    assert changed and changed <= names, sorted(changed - names)[:3]
    assert trainable_parameters(m)['base'] == sum(p.numel() for p in norm_parameters(m))

def test_adapters_saved_into_a_plain_hf_folder_leave_its_files(tmp_path):
    base = tiny_model('vanilla_vit', head=3).eval()
    base.backbone.save_pretrained(tmp_path/'hf')
    before = {p.name: p.read_bytes() for p in (tmp_path/'hf').iterdir()}
    m = _trained(add_lora(copy.deepcopy(base), 4))
    save_model(m, tmp_path/'hf', lora='adapters')
    assert all((tmp_path/'hf'/k).read_bytes() == v for k, v in before.items()) # the user's own files: untouched
    assert torch.equal(load_model(tmp_path/'hf', base=base)(X), m(X))

def test_vit_learner_lora_argument():
    "`vit_learner(..., lora=4)` adds the adapters itself; `fine_tune` trains them and the head, never a base weight"
    m = tiny_model('dinov2_reg_vit', head=3)
    n_base = sum(p.numel() for p in m.backbone.parameters())
    learn = vit_learner(_dls(), m, normalize=False, freeze_backbone=True, lora=4)
    assert has_lora(m) and trainable_parameters(m)['base'] == 0
    base = {k: v.clone() for k, v in m.state_dict().items() if '.lora_' not in k and k.startswith('backbone.')}
    assert sum(v.numel() for v in base.values()) == n_base # the same weights, under peft's names
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-2)
    after = m.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base.items()), 'a base weight changed'
    assert trainable_parameters(m)['adapters'] > 0 and trainable_parameters(m)['base'] == 0

def test_build_model_lora_argument():
    "`build_model(..., lora=4)` is `add_lora(build_model(...), 4)`"
    from vitzoo.factory import tiny_config, build_model
    m = build_model('clip_vit', head=3, load_pretrained=False, config_kwargs=tiny_config('clip_vit'), lora=4)
    tp = trainable_parameters(m)
    assert has_lora(m) and tp['base'] == 0 and tp['adapters'] > 0 and tp['head'] == sum(p.numel() for p in m.head.parameters())
