"timm's model interface on every family (`vitzoo.timm_api`): equality with the HF backbone's hidden states, and timm's own tools on a vitzoo model."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import pytest, torch
timm = pytest.importorskip('timm')
from torch.testing import assert_close
from timm.models import group_parameters
from timm.models._features import FeatureGetterNet
from timm.optim import create_optimizer_v2
from timm.scheduler import StepLRScheduler
from timm.utils import freeze
from vitzoo.factory import tiny_model
from vitzoo.heads import IdentityHead, LinearHead
from fastai.torch_core import norm_bias_params
from vitzoo.learner import layer_decay_mults, vit_learner, vit_splitter

FAMILIES = ['vanilla_vit', 'deit_vit', 'dino_vit', 'dino_v2_vit', 'dinov2_reg_vit', 'dinov3_vit', 'clip_vit']
# the position embeddings and prefix tokens, by each family's HF parameter names
NO_WD = {'vanilla_vit': {'cls_token', 'position_embeddings'}, 'dino_vit': {'cls_token', 'position_embeddings'},
         'deit_vit': {'cls_token', 'distillation_token', 'position_embeddings'},
         'dino_v2_vit': {'cls_token', 'mask_token', 'position_embeddings'},
         'dinov2_reg_vit': {'cls_token', 'mask_token', 'register_tokens', 'position_embeddings'},
         'dinov3_vit': {'cls_token', 'mask_token', 'register_tokens'}, # RoPE: no position parameters
         'clip_vit': {'class_embedding', 'position_embedding.weight'}}

def _model(name, **kw):
    torch.manual_seed(0)
    return tiny_model(name, head=3, **kw).eval()

def _grid(t, h, w): return t.reshape(t.shape[0], h, w, -1).permute(0, 3, 1, 2)

@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('size', [(32, 32), (48, 64)])
def test_matches_hidden_states(name, size):
    m = _model(name)
    x = torch.randn(2, 3, *size)
    h, w, npt = size[0] // 8, size[1] // 8, m.num_prefix_tokens
    with torch.no_grad():
        hs = m.backbone_outputs(x, output_hidden_states=True).hidden_states
        final, inter = m.forward_intermediates(x)
        normed = m.forward_intermediates(x, norm=True, output_fmt='NLC', return_prefix_tokens=True, intermediates_only=True)
        toks, emb = m.tokens(x)[0], m(x, output_embeddings=True)
    assert len(hs) == 3 and len(m.blocks) == len(inter) == len(normed) == 2
    for i, (g, (p, pre)) in enumerate(zip(inter, normed)):
        assert g.shape == (2, 32, h, w) and p.shape == (2, h * w, 32) and pre.shape == (2, npt, 32)
        assert_close(g, _grid(hs[i + 1][:, npt:], h, w))
        assert_close(torch.cat([pre, p], 1), m.norm(hs[i + 1]))
    assert_close(final, toks)
    assert_close(torch.cat([normed[-1][1], normed[-1][0]], 1), toks) # the last block, normed, is the final features
    assert_close(m.forward_features(x), toks)
    assert_close(m.forward_head(toks, pre_logits=True), emb['embeddings'])
    assert_close(m.forward_head(toks), emb['predictions'])

def test_indices_and_stop_early():
    m = _model('dinov2_reg_vit', config_kwargs=dict(num_hidden_layers=4))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hs = m.backbone_outputs(x, output_hidden_states=True).hidden_states
        take = lambda idx: m.forward_intermediates(x, indices=idx, output_fmt='NLC', intermediates_only=True)
        for idx, blocks in [(None, [0, 1, 2, 3]), (2, [2, 3]), ([1], [1]), ([-1, 0], [0, 3]), ([2, 2, -2], [2])]:
            got = take(idx)
            assert len(got) == len(blocks), idx
            for g, b in zip(got, blocks): assert_close(g, hs[b + 1][:, 5:])
        final, inter = m.forward_intermediates(x, indices=[1], stop_early=True, output_fmt='NLC')
        assert_close(inter[0], hs[2][:, 5:])
        assert_close(final, m.norm(hs[2])) # timm: the final features come from the last block that ran
        assert len(m.blocks) == 4 # the blocks are back
        d = m.forward_intermediates(x, indices=1, output_dict=True, return_prefix_tokens=True)
        assert set(d) == {'image_intermediates', 'image_intermediates_prefix', 'image_features'}
        assert d['image_intermediates_prefix'][0].shape == (2, 5, 32)
        empty = m.forward_intermediates(torch.zeros(0, 3, 32, 32))
    assert empty[0].shape == (0, 5 + 16, 32) and [t.shape for t in empty[1]] == [(0, 32, 4, 4)] * 4

def test_bad_inputs():
    m = _model('vanilla_vit')
    x = torch.randn(1, 3, 32, 32)
    for idx, err, msg in [(0, ValueError, 'pass 1 to 2'), (3, ValueError, 'the model has 2'), ([2], ValueError, 'out of range'),
                          ([-3], ValueError, 'use 0 to 1 or -2 to -1'), ([], TypeError, 'non-empty list'), ('last', TypeError, 'got \'last\''),
                          ([0.5], TypeError, 'must hold ints'), (True, TypeError, 'indices must be')]:
        with pytest.raises(err, match=msg): m.forward_intermediates(x, indices=idx)
    with pytest.raises(ValueError, match="'NCHW'.*'NHWC'"): m.forward_intermediates(x, output_fmt='NHWC')
    with pytest.raises(ValueError, match='multiple of the patch size'): m.forward_intermediates(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r'forward_head takes tokens.*got shape \(1, 3, 32, 32\)'): m.forward_head(x)
    with pytest.raises(ValueError, match=r'more than 1 tokens'): m.forward_head(torch.randn(1, 1, 32))
    with pytest.raises(ValueError, match='num_classes must be an int >= 0'): m.reset_classifier(-1)
    with pytest.raises(ValueError, match='num_classes must be an int >= 0'): m.reset_classifier(2.0)
    with pytest.raises(ValueError, match="global_pool='max'"): m.reset_classifier(2, global_pool='max')
    with pytest.raises(ValueError, match="global_pool=''"): m.reset_classifier(2, global_pool='')
    with pytest.raises(TypeError, match='enable must be True or False'): m.set_grad_checkpointing('yes')
    with pytest.raises(ValueError, match='pass 1 to 2'): m.prune_intermediate_layers(5)
    assert len(m.blocks) == 2 and isinstance(m.head, LinearHead) # a refused call changed nothing

def test_reset_classifier():
    m = _model('dino_v2_vit')
    assert (m.num_classes, m.num_features, m.get_classifier()) == (3, 32, m.head)
    m.reset_classifier(5, global_pool='avg')
    assert (m.pooling, m.num_classes, type(m.head)) == ('mean', 5, LinearHead) and not m.head.training
    m.reset_classifier(0, 'cls+mean')
    assert (m.num_classes, m.num_features, type(m.head)) == (0, 64, IdentityHead)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(): assert_close(m(x), m.forward_head(m.forward_features(x), pre_logits=True))
    m.reset_classifier(4, 'token')
    assert (m.pooling, m.num_features, m.head.input_dim, m(x).shape) == ('cls', 32, 32, (2, 4))
    m.to(torch.bfloat16).train()
    m.reset_classifier(2)
    assert m.head.training and {p.dtype for p in m.head.parameters()} == {torch.bfloat16} # the new head matches the model

def test_grad_checkpointing():
    "Checkpointing recomputes each block in the backward pass and gives the same gradients, intermediates included"
    grads, calls = {}, {}
    for ckpt in (False, True):
        m = _model('dinov3_vit').train()
        m.set_grad_checkpointing(ckpt)
        assert m.grad_checkpointing == ckpt
        n = [0]
        m.blocks[0].mlp.register_forward_hook(lambda *a: n.__setitem__(0, n[0] + 1))
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        final, inter = m.forward_intermediates(x, indices=[0])
        (m.forward_head(final).square().mean() + inter[0].square().mean()).backward()
        grads[ckpt] = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
        calls[ckpt] = n[0]
    assert calls == {False: 1, True: 2} # the block's MLP ran again in the backward pass
    assert grads[True].keys() == grads[False].keys() and len(grads[True]) > 20
    for k in grads[False]: assert_close(grads[True][k], grads[False][k], msg=k)
    m.set_grad_checkpointing(False)
    assert not m.grad_checkpointing

@pytest.mark.parametrize('name', FAMILIES)
def test_no_weight_decay(name):
    m = _model(name)
    names = m.no_weight_decay()
    assert names == {f'backbone.embeddings.{k}' for k in NO_WD[name]}
    assert names <= dict(m.named_parameters()).keys()

def _vitzoo_learner(m):
    "A `vit_learner(..., layer_decay=0.75, wd=0.05)` on `m`, its optimizer created"
    from fastai.data.core import DataLoaders
    ds = list(zip(torch.randn(8, 3, 32, 32), torch.arange(8) % 3))
    learn = vit_learner(DataLoaders.from_dsets(ds, ds, bs=4, device='cpu'), m, n_out=3, normalize=False, layer_decay=0.75, wd=0.05,
                        loss_func=torch.nn.CrossEntropyLoss())
    learn.create_opt()
    return learn

def _timm_opt(m):
    "Each parameter's lr multiplier and whether it is decayed in timm's `create_optimizer_v2(m, 'adamw', layer_decay=0.75)`"
    opt = create_optimizer_v2(m, 'adamw', lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    StepLRScheduler(opt, decay_t=10) # timm's schedulers apply each group's lr_scale
    return ({id(p): g['lr'] / 1e-3 for g in opt.param_groups for p in g['params']},
            {id(p): g['weight_decay'] > 0 for g in opt.param_groups for p in g['params']})

@pytest.mark.parametrize('name', FAMILIES)
def test_optimizer_parity(name):
    "timm's `create_optimizer_v2(layer_decay=0.75)` scales every parameter's lr as `vit_learner(layer_decay=0.75)` does"
    m = _model(name, config_kwargs=dict(num_hidden_layers=3))
    names = {id(p): n for n, p in m.named_parameters()}
    t_lr, _ = _timm_opt(m)
    learn = _vitzoo_learner(m)
    mults = next(cb for cb in learn.cbs if type(cb).__name__ == 'LayerDecay').mults
    assert len(mults) == len(learn.opt.param_lists) == len(m.blocks) + 2
    v_lr = {id(p): mult for ps, mult in zip(learn.opt.param_lists, mults) for p in ps}
    assert t_lr.keys() == v_lr.keys() == names.keys()
    for k in names: assert t_lr[k] == pytest.approx(v_lr[k]), names[k]
    assert sorted(set(t_lr.values())) == pytest.approx(layer_decay_mults(3, 0.75)) # stem, 3 blocks, norm + head

def _vitzoo_no_wd(m):
    "Names vitzoo's learner means to exempt from weight decay: fastai's biases and norms (`wd_bn_bias=False`), `no_weight_decay()` and LayerScale"
    ids = {id(p) for p in norm_bias_params(m)}
    return {n for n, p in m.named_parameters() if id(p) in ids or n in m.no_weight_decay() or n.endswith('.lambda1')}

@pytest.mark.parametrize('name', FAMILIES)
def test_weight_decay_difference(name):
    "timm exempts every 1-d tensor and `no_weight_decay()`; vitzoo biases, LayerNorms, the same names and LayerScale: the same set"
    m = _model(name)
    names = {id(p): n for n, p in m.named_parameters()}
    _, t_wd = _timm_opt(m)
    t_no_wd = {names[k] for k, v in t_wd.items() if not v}
    diff = t_no_wd ^ _vitzoo_no_wd(m)
    assert diff == set(), diff
    assert {n for n in names.values() if n.endswith('lambda1')} <= t_no_wd # DINOv2/DINOv3's LayerScale included

@pytest.mark.parametrize('name', ['vanilla_vit', 'dinov3_vit'])
def test_learner_exempts_tokens(name):
    "A real `vit_learner`'s optimizer exempts exactly what vitzoo means to (tokens, position embeddings, LayerScale, norms, biases)"
    m = _model(name)
    learn = _vitzoo_learner(m)
    no_wd = {n for n, p in m.named_parameters() if not learn.opt.state[p].get('do_wd', True)}
    assert no_wd == _vitzoo_no_wd(m)

def test_group_matcher():
    m = _model('clip_vit')
    layer = group_parameters(m, m.group_matcher(), reverse=True)
    assert {n: layer[n] for n in ['backbone.embeddings.class_embedding', 'backbone.pre_layrnorm.weight', 'backbone.encoder.layers.0.mlp.fc1.weight',
                                  'backbone.encoder.layers.1.self_attn.q_proj.bias']} == {'backbone.embeddings.class_embedding': 0,
            'backbone.pre_layrnorm.weight': 0, 'backbone.encoder.layers.0.mlp.fc1.weight': 1, 'backbone.encoder.layers.1.self_attn.q_proj.bias': 2}
    head = {f'head.{n}' for n, _ in m.head.named_parameters()}
    assert len(head) == 2 and {n for n, l in layer.items() if l == 3} == {'backbone.post_layernorm.weight', 'backbone.post_layernorm.bias'} | head
    # same groups as vitzoo's splitter
    groups = vit_splitter(m, block_groups=2)
    names = {id(p): n for n, p in m.named_parameters()}
    assert [sorted(names[id(p)] for p in g) for g in groups] == [sorted(n for n, l in layer.items() if l == i) for i in range(4)]
    assert m.group_matcher(coarse=True) == m.group_matcher()

@pytest.mark.parametrize('name', ['deit_vit', 'dinov2_reg_vit', 'clip_vit'])
def test_timm_feature_getter(name):
    "timm's `FeatureGetterNet` (what `features_only` models use) wraps a vitzoo model: it prunes it and reads its intermediates"
    ref = _model(name)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad(): hs = ref.backbone_outputs(x, output_hidden_states=True).hidden_states
    m = _model(name)
    net = FeatureGetterNet(m, out_indices=[0], norm=False)
    assert len(m.blocks) == m.config.num_hidden_layers == 1 and type(m.norm).__name__ == 'Identity' and m.num_classes == 0
    assert net.feature_info.channels() == [32] and net.feature_info.reduction() == [8]
    with torch.no_grad(): feats = net(x)
    assert len(feats) == 1
    assert_close(feats[0], _grid(hs[1][:, m.num_prefix_tokens:], 4, 6))
    normed = FeatureGetterNet(_model(name), out_indices=1, norm=True) # keeps the final norm
    with torch.no_grad(): assert_close(normed(x)[0], _grid(ref.norm(hs[2])[:, m.num_prefix_tokens:], 4, 6))

def test_timm_freeze():
    "timm's `freeze` helper works on vitzoo's module names (`freeze_backbone` does the whole backbone)"
    m = _model('dino_vit')
    freeze(m, ['backbone.embeddings', 'backbone.layers.0'])
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in m.named_parameters() if n.startswith(('backbone.embeddings.', 'backbone.layers.0.'))}

@pytest.mark.parametrize('name', ['vanilla_vit', 'dino_v2_vit', 'dinov3_vit', 'clip_vit'])
def test_pruned_model_saves(tmp_path, name):
    "A model pruned to its first blocks saves and loads as the smaller model; one whose norm was pruned is refused on load"
    from vitzoo.save import CheckpointError, load_model, save_model
    m = _model(name, config_kwargs=dict(num_hidden_layers=4))
    x = torch.randn(2, 3, 32, 32)
    assert m.prune_intermediate_layers([0, 1]) == [0, 1]
    save_model(m, tmp_path/'a')
    back = load_model(tmp_path/'a')
    assert len(back.blocks) == back.config.num_hidden_layers == 2 and back.num_classes == 0
    if hasattr(back.config, 'stage_names'): assert (back.config.stage_names, back.config.out_features) == (['stem', 'stage1', 'stage2'], ['stage2'])
    with torch.no_grad(): assert_close(back(x), m(x))
    m.prune_intermediate_layers(1, prune_norm=True)
    save_model(m, tmp_path/'b')
    with pytest.raises(CheckpointError, match='missing 2 tensors'): load_model(tmp_path/'b')
