"Every argument of fastai's `vision_learner`, as `vit_learner` takes it: one test per row of the table on the learner page"
import inspect, os, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore', message='`torch.jit.script` is deprecated')
from functools import partial
import numpy as np, pytest, torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.vision.all import (ImageDataLoaders, Resize, accuracy, SGD, Adam, MSELossFlat, CrossEntropyLossFlat, Normalize,
                               SigmoidRange, LinBnDrop, ShowGraphCallback, vision_learner)
from fastai.losses import BaseLoss
from vitzoo.factory import tiny_model, tiny_config
from vitzoo.data import digits_folder
from vitzoo.learner import vit_learner, vit_splitter, FastaiHead, ModuleHead, LayerDecay
from vitzoo.heads import LinearHead, MLPHead, IdentityHead
from vitzoo.registry import DEFAULT_MODELS
from vitzoo.save import save_model, load_model

@pytest.fixture(scope='module')
def folder(): return digits_folder(n_per_class=6, valid_pct=0.34)

def digits(folder, size=32, bs=8, **kw): return ImageDataLoaders.from_folder(folder, valid='valid', item_tfms=Resize(size), bs=bs, num_workers=0, **kw)

@pytest.fixture
def dls(folder): return digits(folder)

def regression(n=16, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, ys = torch.rand(n, c, size, size, generator=g), torch.rand(n, 1, generator=g) * 5
    ds = list(zip(xs, ys))
    return DataLoaders.from_dsets(ds[:12], ds[12:], bs=4, num_workers=0)

def fit_one(learn, lr=1e-3):
    "One epoch at `lr` (`None`: the learner's own `lr`)"
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr)

# the table's rows: every argument of `vision_learner`
VISION_ARGS = [p for p in inspect.signature(vision_learner).parameters if p != 'kwargs']

def test_every_vision_learner_argument_is_a_parameter():
    params = inspect.signature(vit_learner).parameters
    assert [p for p in VISION_ARGS if p not in params] == []
    assert 'n_in' in params and 'kwargs' in params  # fastai takes them through `**kwargs` (create_vision_model)

# --- same as vision_learner ---
def test_dls_and_arch(dls):
    learn = vit_learner(dls, 'vanilla_vit', pretrained=False, config_kwargs=tiny_config('vanilla_vit'))
    assert learn.model.head.output_dim == 10 and learn.n_out == 10
    with pytest.raises(TypeError, match='dls must be fastai DataLoaders'): vit_learner([1], 'vanilla_vit')
    with pytest.raises(TypeError, match='arch must be a registry name'): vit_learner(dls, nn.Linear(3, 3))

def test_normalize(dls):
    vit_learner(dls, tiny_model('clip_vit'))
    norms = [t for t in dls.after_batch.fs if isinstance(t, Normalize)]
    assert len(norms) == 1
    torch.testing.assert_close(norms[0].mean.flatten() * 255, torch.tensor([0.48145466, 0.4578275, 0.40821073]) * 255)
    d2 = regression(); vit_learner(d2, tiny_model('vanilla_vit'), n_out=1, loss_func=MSELossFlat(), normalize=False)
    assert not [t for t in d2.after_batch.fs if isinstance(t, Normalize)]

def test_n_out(dls):
    assert vit_learner(dls, tiny_model('dino_vit'), n_out=12).model.head.output_dim == 12
    with pytest.raises(ValueError, match='n_out=5 is fewer than the 10 classes'): vit_learner(dls, tiny_model('dino_vit'), n_out=5)

def test_pretrained_default(dls):
    "fastai: True. vitzoo: None = True for a name (as fastai), the model's own state for a built model"
    assert inspect.signature(vit_learner).parameters['pretrained'].default is None
    m = tiny_model('dino_vit'); m.pretrained = True
    assert vit_learner(dls, m).opt.frozen_idx == 2  # pretrained: starts frozen, like vision_learner
    assert vit_learner(dls, tiny_model('dino_vit')).opt is None  # random: trains whole
    assert vit_learner(dls, 'dino_vit', pretrained=False, config_kwargs=tiny_config('dino_vit')).pretrained is False

def test_weights_not_applicable(dls):
    vit_learner(dls, tiny_model('vanilla_vit'), weights=None)
    with pytest.raises(ValueError, match="a ViT's weights are its checkpoint"): vit_learner(dls, tiny_model('vanilla_vit'), weights='DEFAULT')

def test_loss_func(dls):
    assert isinstance(vit_learner(dls, tiny_model('vanilla_vit')).loss_func, BaseLoss)  # from dls, as fastai
    d2 = regression()
    with pytest.raises(ValueError, match='pass loss_func, e.g. MSELossFlat'): vit_learner(d2, tiny_model('vanilla_vit'), n_out=1)

def test_opt_func_lr_wd_moms(dls):
    learn = vit_learner(dls, tiny_model('vanilla_vit'), opt_func=partial(SGD, mom=0.9), lr=3e-3, wd=0.05, moms=(0.9, 0.8, 0.9))
    fit_one(learn, None)
    assert (learn.lr, learn.wd, learn.moms, learn.opt.hypers[0]['wd'], learn.opt.hypers[0]['lr']) == (3e-3, 0.05, (0.9, 0.8, 0.9), 0.05, 3e-3)

def test_splitter(dls):
    learn = vit_learner(dls, tiny_model('vanilla_vit'))
    assert len(learn.splitter(learn.model)) == 3  # stem | blocks | norm + head
    custom = lambda m: [list(m.backbone.parameters()), list(m.head.parameters())]
    assert len(vit_learner(dls, tiny_model('vanilla_vit'), splitter=custom).splitter(learn.model)) == 2

def test_cbs_metrics_path_model_dir(dls, tmp_path):
    learn = vit_learner(dls, tiny_model('vanilla_vit'), cbs=ShowGraphCallback(), metrics=accuracy, path=tmp_path, model_dir='ckpt')
    assert any(isinstance(cb, ShowGraphCallback) for cb in learn.cbs) and learn.metrics[0].name == 'accuracy'
    assert learn.save('x') == tmp_path/'ckpt'/'x.pth' and (tmp_path/'ckpt'/'x.pth').is_file()

def test_wd_bn_bias(dls):
    "Same default as fastai (False): norms and biases get no weight decay"
    def do_wd(learn): learn.create_opt(); return {n: learn.opt.state[p].get('do_wd', True) for n, p in learn.model.named_parameters()}
    off, on = do_wd(vit_learner(dls, tiny_model('vanilla_vit'))), do_wd(vit_learner(dls, tiny_model('vanilla_vit'), wd_bn_bias=True))
    assert off['head.linear.bias'] is False and on['head.linear.bias'] is True and off['head.linear.weight'] is True

def test_train_bn_default_differs(dls):
    "fastai: True; vitzoo: False, so that freeze() trains exactly the final norm and the head"
    assert inspect.signature(vit_learner).parameters['train_bn'].default is False
    train = lambda l: {n for n, p in l.model.named_parameters() if p.requires_grad}
    frozen = vit_learner(dls, tiny_model('dino_vit'), freeze_backbone=True)
    assert train(frozen) == {'backbone.layernorm.weight', 'backbone.layernorm.bias', 'head.linear.weight', 'head.linear.bias'}
    bn = vit_learner(dls, tiny_model('dino_vit'), freeze_backbone=True, train_bn=True)
    assert len(train(bn)) == 4 + 2 * 2 * 2  # + two LayerNorms in each of the 2 blocks

# --- model & head arguments ---
def test_cut_not_applicable(dls):
    vit_learner(dls, tiny_model('vanilla_vit'), cut=None)
    with pytest.raises(ValueError, match='a ViT has none'): vit_learner(dls, tiny_model('vanilla_vit'), cut=-2)

def test_concat_pool_not_applicable(dls):
    vit_learner(dls, tiny_model('vanilla_vit'), concat_pool=False)
    with pytest.raises(ValueError, match="pass pooling='cls\\+mean'"): vit_learner(dls, tiny_model('vanilla_vit'), concat_pool=True)

def test_pool_not_applicable(dls):
    vit_learner(dls, tiny_model('vanilla_vit'), pool=True)
    with pytest.raises(ValueError, match='always takes the pooled embedding'): vit_learner(dls, tiny_model('vanilla_vit'), pool=False)

def test_init(dls):
    "fastai default kaiming_normal_ on every head; vitzoo default None: the head as built (PyTorch's Linear init)"
    torch.manual_seed(0)
    plain = vit_learner(dls, tiny_model('vanilla_vit')).model.head.linear.weight
    torch.manual_seed(0)
    kaiming = vit_learner(dls, tiny_model('vanilla_vit'), init=nn.init.kaiming_normal_).model.head.linear
    assert plain.abs().max() <= 1 / plain.shape[1] ** 0.5  # uniform(-1/sqrt(in), 1/sqrt(in))
    assert 0.8 < kaiming.weight.std().item() * plain.shape[1] ** 0.5 / 2 ** 0.5 < 1.2 and (kaiming.bias == 0).all()
    m = tiny_model('vanilla_vit', head=10)
    with pytest.raises(ValueError, match='keeps its own'): vit_learner(dls, m, init=nn.init.kaiming_normal_)
    with pytest.raises(TypeError, match='init must be an initialisation function'): vit_learner(dls, tiny_model('vanilla_vit'), init='kaiming')

def test_custom_head_plain_module(dls, tmp_path):
    m = tiny_model('vanilla_vit')
    learn = vit_learner(dls, m, custom_head=nn.Sequential(nn.Linear(m.pooled_dim, 16), nn.ReLU(), nn.Linear(16, 10)))
    assert isinstance(learn.model.head, ModuleHead) and learn.model.head.output_dim == 10
    fit_one(learn)
    with pytest.raises(ValueError, match=f"first Linear takes 5 features but the model's pooled embedding has {m.pooled_dim}"):
        vit_learner(dls, tiny_model('vanilla_vit'), custom_head=nn.Linear(5, 10))
    with pytest.raises(ValueError, match='The head has 3 outputs but dls has 10'): vit_learner(dls, tiny_model('vanilla_vit'), custom_head=nn.Linear(m.pooled_dim, 3))
    with pytest.raises(TypeError, match='save_model cannot rebuild a custom_head that is a plain nn.Module'): save_model(learn.model, tmp_path/'m')
    learn.export(tmp_path/'l.pkl')  # it pickles
    with pytest.raises(TypeError, match='custom_head must be an nn.Module'): vit_learner(dls, tiny_model('vanilla_vit'), custom_head='linear')
    with pytest.raises(ValueError, match='Pass the head once'): vit_learner(dls, tiny_model('vanilla_vit'), head=10, custom_head=nn.Linear(m.pooled_dim, 10))

def test_custom_head_basehead_saves(dls, tmp_path):
    m = tiny_model('vanilla_vit')
    learn = vit_learner(dls, m, custom_head=MLPHead(m.pooled_dim, [16], 10))
    assert type(learn.model.head) is MLPHead
    save_model(learn.model, tmp_path/'m')
    assert type(load_model(tmp_path/'m').head) is MLPHead

@pytest.mark.parametrize('kw,layers', [(dict(lin_ftrs=[16]), ['BatchNorm1d', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear']),
                                       (dict(ps=0.2), ['BatchNorm1d', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear']),
                                       (dict(lin_ftrs=[], first_bn=False, ps=0.), ['Linear']),
                                       (dict(lin_ftrs=[16], bn_final=True), ['BatchNorm1d', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear', 'BatchNorm1d']),
                                       (dict(lin_ftrs=[16], lin_first=True), ['Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear'])])
def test_lin_ftrs_ps_first_bn_bn_final_lin_first(dls, tmp_path, kw, layers):
    "fastai's create_head recipe (its defaults for what is not given: lin_ftrs [512], ps 0.5, first_bn True) on the pooled embedding"
    from fastai.vision.learner import create_head
    m = tiny_model('vanilla_vit')
    learn = vit_learner(dls, m, **kw)
    h = learn.model.head
    assert isinstance(h, FastaiHead) and [type(l).__name__ for l in h.modules() if not isinstance(l, (nn.Sequential, FastaiHead, LinBnDrop))] == layers
    full = {**dict(lin_ftrs=None, ps=0.5, first_bn=True, bn_final=False, lin_first=False), **kw}
    assert repr(h.layers) == repr(create_head(m.pooled_dim, 10, pool=False, concat_pool=False, **full))  # fastai's own head
    fit_one(learn)
    save_model(learn.model, tmp_path/'m')
    m2 = load_model(tmp_path/'m').eval(); learn.model.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(m2(x), learn.model(x))

def test_lin_ftrs_default_is_fastai_512(dls):
    assert [l.out_features for l in vit_learner(dls, tiny_model('vanilla_vit'), ps=0.25).model.head.modules() if isinstance(l, nn.Linear)] == [512, 10]

def test_head_recipe_checks(dls):
    m = tiny_model('vanilla_vit')
    with pytest.raises(ValueError, match='ps has 3 dropout probabilities but the head has 2 linear layers'): vit_learner(dls, m, lin_ftrs=[8], ps=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match='ps must be in \\[0, 1\\), got 1.5'): vit_learner(dls, m, ps=1.5)
    with pytest.raises(TypeError, match='lin_ftrs must be a list of hidden widths'): vit_learner(dls, m, lin_ftrs=512)
    with pytest.raises(ValueError, match='build vit_learner.s own head, but a head was passed too'): vit_learner(dls, m, head=10, lin_ftrs=[8])
    with pytest.raises(ValueError, match='cannot train on a batch of 1'): vit_learner(dls, m, lin_ftrs=[8]).model.train()(torch.randn(1, 3, 32, 32))

def test_y_range_regression(tmp_path):
    d2 = regression()
    torch.manual_seed(0)
    learn = vit_learner(d2, tiny_model('vanilla_vit'), n_out=1, loss_func=MSELossFlat(), y_range=(0, 5))
    h = learn.model.head
    assert [type(l).__name__ for l in h.layers] == ['Linear', 'SigmoidRange']  # y_range alone keeps vitzoo's single linear layer
    fit_one(learn, 1e-2)
    preds, _ = learn.get_preds()
    assert preds.shape == (4, 1) and (preds > 0).all() and (preds < 5).all()
    save_model(learn.model, tmp_path/'m')
    m2 = load_model(tmp_path/'m').eval()
    x = torch.randn(3, 3, 32, 32) * 50  # extreme inputs stay in range
    out = m2(x)
    assert torch.equal(out, learn.model.eval()(x)) and ((out >= 0) & (out <= 5)).all()
    with pytest.raises(ValueError, match='low < high'): vit_learner(d2, tiny_model('vanilla_vit'), n_out=1, loss_func=MSELossFlat(), y_range=(5, 0))
    with pytest.raises(TypeError, match='y_range must be \\(low, high\\)'): vit_learner(d2, tiny_model('vanilla_vit'), n_out=1, loss_func=MSELossFlat(), y_range=5)

@pytest.mark.parametrize('name', DEFAULT_MODELS)
@pytest.mark.parametrize('n_in', [1, 4])
def test_n_in(name, n_in, tmp_path):
    "fastai's _update_first_layer on the patch embedding: 1 channel sums the RGB weights, 4 keep RGB and add a zero channel"
    torch.manual_seed(0)
    ref = tiny_model(name).eval(); ref.pretrained = True
    m = tiny_model(name).eval(); m.load_state_dict(ref.state_dict()); m.pretrained = True
    learn = vit_learner(regression(c=n_in), m, n_out=1, loss_func=MSELossFlat(), n_in=n_in, normalize=False)
    assert learn.model.config.num_channels == n_in
    g = torch.randn(2, 1, 32, 32)
    x_new, x_rgb = (g, g.expand(-1, 3, -1, -1)) if n_in == 1 else (torch.cat([g.expand(-1, 3, -1, -1), torch.randn(2, 1, 32, 32)], 1), g.expand(-1, 3, -1, -1))
    with torch.no_grad(): torch.testing.assert_close(m.tokens(x_new)[0], ref.tokens(x_rgb)[0], atol=1e-5, rtol=1e-4)  # same features as RGB
    fit_one(learn)
    save_model(learn.model, tmp_path/'m')
    m2 = load_model(tmp_path/'m').eval()
    assert m2.config.num_channels == n_in and torch.equal(m2(x_new), learn.model.eval()(x_new))

def test_n_in_normalize_and_errors(dls):
    d1 = regression(c=1)
    vit_learner(d1, tiny_model('vanilla_vit'), n_out=1, loss_func=MSELossFlat(), n_in=1)
    norm = [t for t in d1.after_batch.fs if isinstance(t, Normalize)][0]
    assert norm.mean.shape == (1, 1, 1, 1)
    d4 = regression(c=4)
    vit_learner(d4, tiny_model('clip_vit'), n_out=1, loss_func=MSELossFlat(), n_in=4)
    norm = [t for t in d4.after_batch.fs if isinstance(t, Normalize)][0]
    torch.testing.assert_close(norm.mean[0, 3], norm.mean[0, :3].mean(0))  # the extra channel: average of the RGB statistics
    with pytest.raises(ValueError, match='dls yields 1-channel images .* but the model takes 3: pass n_in=1'):
        vit_learner(regression(c=1), tiny_model('vanilla_vit'), n_out=1, loss_func=MSELossFlat())
    with pytest.raises(ValueError, match='dls yields 3-channel images .* but the model takes 1: pass n_in=3'):
        vit_learner(dls, tiny_model('vanilla_vit'), n_in=1)
    with pytest.raises(ValueError, match='n_in must be >= 1'): vit_learner(dls, tiny_model('vanilla_vit'), n_in=0)

def test_kwargs_to_build_model(dls):
    "fastai @delegates to the model builder: here build_model's arguments, or config values (as timm's create_model)"
    learn = vit_learner(dls, 'vanilla_vit', pretrained=False, config_kwargs=tiny_config('vanilla_vit'), attn_implementation='eager', strict=False)
    assert learn.model.config._attn_implementation == 'eager'
    learn = vit_learner(dls, 'vanilla_vit', pretrained=False, config_kwargs=tiny_config('vanilla_vit'), backbone_cls='ViTModel', layer_norm_eps=1e-3)
    assert learn.model.config.layer_norm_eps == 1e-3
    with pytest.raises(ValueError, match="given both as arguments and in config_kwargs"):
        vit_learner(dls, 'vanilla_vit', pretrained=False, config_kwargs=tiny_config('vanilla_vit'), hidden_size=32)
    with pytest.raises(ValueError, match='apply only when arch is a registry name'): vit_learner(dls, tiny_model('vanilla_vit'), strict=False)
    assert {'backbone_cls', 'strict', 'kwargs'} <= set(inspect.signature(vit_learner).parameters)

# --- not arguments, but part of the issue ---
def test_image_size_not_multiple_of_patch_refused_at_build(folder):
    with pytest.raises(ValueError, match=r'dls yields 30x30 images, not a multiple of the model.s 8-pixel patches: .*item_tfms=Resize\(32\)'):
        vit_learner(digits(folder, size=30), tiny_model('vanilla_vit'))
    vit_learner(digits(folder, size=40), tiny_model('dino_v2_vit'))  # any multiple of the patch works

def test_layer_decay_times_slice(dls):
    "layer_decay multiplies whatever rate each group is scheduled: with lr=slice(1e-4, 1e-2) the groups get even_mults x decay**depth"
    torch.manual_seed(0)
    learn = vit_learner(dls, tiny_model('vanilla_vit'), layer_decay=0.5, lr=slice(1e-4, 1e-2), opt_func=partial(SGD, mom=0.), wd=0.)
    ld = next(cb for cb in learn.cbs if isinstance(cb, LayerDecay))
    fit_one(learn, None)  # fit at the learner's lr, the slice: fastai spreads it over the 4 groups geometrically
    np.testing.assert_allclose([h['lr'] for h in learn.opt.hypers], [1e-4, 1e-4 * 10 ** (2/3), 1e-4 * 10 ** (4/3), 1e-2], rtol=1e-6)
    np.testing.assert_allclose(ld.applied, [1e-4 * 0.125, 1e-4 * 10 ** (2/3) * 0.25, 1e-4 * 10 ** (4/3) * 0.5, 1e-2], rtol=1e-6)

def test_layer_decay_alone_with_fine_tune(dls):
    "fine_tune(lr_mult=1) gives every group the same scheduled rate, so the applied rates are exactly the decay's"
    learn = vit_learner(dls, tiny_model('vanilla_vit'), layer_decay=0.5)
    ld = next(cb for cb in learn.cbs if isinstance(cb, LayerDecay))
    with learn.no_bar(), learn.no_logging(): learn.fine_tune(1, 1e-3, freeze_epochs=0, lr_mult=1)
    np.testing.assert_allclose(np.array(ld.applied) / ld.applied[-1], [0.125, 0.25, 0.5, 1.0], rtol=1e-6)

def test_fastai_head_loads_in_a_fresh_process(tmp_path):
    "`load_model` of a `FastaiHead` model imports `vitzoo.learner` itself (a new interpreter has not)"
    import subprocess, sys
    from fastai.losses import CrossEntropyLossFlat
    from vitzoo.factory import tiny_config
    from vitzoo.save import save_model
    ds = list(zip(torch.randn(8, 3, 32, 32), torch.arange(8) % 2))
    learn = vit_learner(DataLoaders.from_dsets(ds, ds, bs=4, device='cpu'), 'vanilla_vit', pretrained=False, n_out=2, lin_ftrs=[16],
                        normalize=False, loss_func=CrossEntropyLossFlat(), config_kwargs=tiny_config('vanilla_vit'))
    save_model(learn.model.eval(), tmp_path/'m')
    x = ds[0][0][None]
    with torch.no_grad(): torch.save((x, learn.model(x)), tmp_path/'xy.pt')
    code = (f"import torch; from vitzoo.save import load_model; m = load_model({str(tmp_path/'m')!r}); "
            f"x, y = torch.load({str(tmp_path/'xy.pt')!r}); assert torch.equal(m(x), y); print(type(m.head).__name__)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert out.returncode == 0 and out.stdout.strip() == 'FastaiHead', out.stderr[-2000:]

def test_schedule_methods_without_fastai_vision_all():
    "A learner from `vit_learner` has `fine_tune`/`fit_one_cycle`/`lr_find` even when the user never imported `fastai.vision.all`"
    import subprocess, sys
    code = ("from vitzoo.learner import ViTLearner; missing = [m for m in ('fine_tune', 'fit_one_cycle', 'lr_find') "
            "if not hasattr(ViTLearner, m)]; assert not missing, missing")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert out.returncode == 0, out.stderr[-1500:]
