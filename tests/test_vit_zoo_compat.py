"vitzoo's own tests of the API it keeps from vit_zoo: import paths, heads, `ViTBackbone`, heads saved by vitzoo 0.0.1"
import json, os, re, subprocess, sys
from pathlib import Path
import pytest, torch
from torch import nn
import transformers

os.environ.setdefault('HF_HUB_OFFLINE', '1')
REPO = Path(__file__).resolve().parent.parent

# ---- import paths ----

def test_import_paths():
    import vitzoo, vitzoo.heads, vitzoo.model, vitzoo.registry
    from vitzoo import ViTModel
    from vitzoo.components import BaseHead, LinearHead, MLPHead, IdentityHead, ViTBackbone
    from vitzoo.factory import build_model, list_models
    from vitzoo.factory.registry import MODEL_REGISTRY, list_models as reg_list_models
    assert ViTModel is vitzoo.model.VitZooModel
    assert (BaseHead, LinearHead, MLPHead, IdentityHead) == (vitzoo.heads.BaseHead, vitzoo.heads.LinearHead,
                                                             vitzoo.heads.MLPHead, vitzoo.heads.IdentityHead)
    assert reg_list_models is vitzoo.registry.list_models and list_models is vitzoo.registry.list_models
    assert callable(build_model) and issubclass(ViTBackbone, nn.Module)
    import vitzoo.components as comp
    assert set(comp.__all__) == {'BaseHead', 'LinearHead', 'MLPHead', 'IdentityHead', 'ViTBackbone'}

def test_model_registry_seed_entries():
    from vitzoo.factory.registry import MODEL_REGISTRY, list_models
    seeds = dict(vanilla_vit=('ViTModel', 'google/vit-base-patch16-224'),
                 deit_vit=('DeiTModel', 'facebook/deit-base-distilled-patch16-224'),
                 dino_vit=('ViTModel', 'facebook/dino-vitb16'), dino_v2_vit=('Dinov2Model', 'facebook/dinov2-base'),
                 dinov2_vit=('Dinov2Model', 'facebook/dinov2-base'),
                 dinov2_reg_vit=('Dinov2WithRegistersModel', 'facebook/dinov2-with-registers-base'),
                 clip_vit=('CLIPVisionModel', 'openai/clip-vit-base-patch16'),
                 dinov3_vit=('DINOv3ViTModel', 'facebook/dinov3-vitb16-pretrain-lvd1689m'))
    for name, (cls, ckpt) in seeds.items():
        assert MODEL_REGISTRY[name] == (getattr(transformers, cls), ckpt), name
        assert name in list_models()

# ---- heads ----

def test_base_head_needs_input_dim_and_forward():
    from vitzoo.components import BaseHead
    class NoForward(BaseHead):
        input_dim = property(lambda self: 4)
    class NoInputDim(BaseHead):
        def forward(self, x): return x
    class Ok(NoForward):
        def forward(self, x): return x
    for cls, missing in ((BaseHead, 'input_dim'), (NoForward, 'forward'), (NoInputDim, 'input_dim')):
        with pytest.raises(TypeError, match=missing): cls()
    assert Ok().input_dim == 4

def test_linear_head_args_and_layer():
    from vitzoo.components import LinearHead
    h = LinearHead(16, 3)
    assert (h.linear.in_features, h.linear.out_features, h.linear.bias is not None) == (16, 3, True)
    h = LinearHead(16, 3, False, 0.5)
    assert h.linear.bias is None and h.dropout.p == 0.5 and h(torch.randn(2, 16)).shape == (2, 3)
    assert sorted(h.state_dict()) == ['linear.weight']
    with pytest.raises(TypeError, match='pass dropout=0.1 by name'): LinearHead(16, 3, 0.1)

def test_mlp_head_args_layers_and_activation():
    from vitzoo.components import MLPHead
    h = MLPHead(16, [8, 4], 3, 'GeLU', 0.2, True) # vit_zoo's positional order
    assert [type(m).__name__ for m in h.mlp] == ['Linear', 'BatchNorm1d', 'GELU', 'Dropout', 'Linear', 'BatchNorm1d', 'GELU',
                                                 'Dropout', 'Linear']
    assert isinstance(h.activation, nn.GELU) and h.activation is h.mlp[2] and h.mlp[3].p == 0.2
    assert h(torch.randn(5, 16)).shape == (5, 3)
    assert [type(m).__name__ for m in MLPHead(16, [8], 3).mlp] == ['Linear', 'ReLU', 'Linear']
    for name, cls in (('relu', nn.ReLU), ('Tanh', nn.Tanh), ('GELU', nn.GELU)): assert type(MLPHead(16, [8], 3, name).activation) is cls
    act = nn.SiLU()
    h = MLPHead(16, [8, 8], 3, activation=act)
    assert isinstance(h.activation, nn.SiLU) and h.mlp[1] is not h.mlp[3] # one copy per hidden layer
    with pytest.raises(ValueError, match='hidden_dims must be a non-empty list'): MLPHead(16, [], 3)
    with pytest.raises(ValueError, match='Unknown activation'): MLPHead(16, [8], 3, activation='swish')
    with pytest.raises(TypeError, match='pass dropout=0.1 by name'): MLPHead(16, [8], 3, 0.1)
    with pytest.raises(ValueError, match='cannot train on a batch of 1'): MLPHead(16, [8], 3, use_batch_norm=True)(torch.randn(1, 16))

def test_identity_head():
    from vitzoo.components import IdentityHead
    x = torch.randn(3, 8)
    assert IdentityHead(8)(x) is x and IdentityHead(8).input_dim == 8

# ---- heads saved by vitzoo 0.0.1 (`fc`, `layers`) ----

def test_old_head_state_dicts_load():
    from vitzoo.heads import LinearHead, MLPHead
    h = LinearHead(8, 3)
    h.load_state_dict({'fc.weight': torch.full((3, 8), 2.), 'fc.bias': torch.ones(3)})
    assert torch.equal(h.linear.weight.detach(), torch.full((3, 8), 2.))
    src = MLPHead(8, [4], 3, activation=nn.PReLU())
    old = {k.replace('mlp.', 'layers.'): v + 1 for k, v in src.state_dict().items()}
    assert 'layers.1.weight' in old
    m = MLPHead(8, [4], 3, activation=nn.PReLU())
    m.load_state_dict(old)
    assert all(torch.equal(m.state_dict()[k], v + 1) for k, v in src.state_dict().items())

def test_old_head_names_in_a_model_state_dict():
    from vitzoo.factory import tiny_model
    m = tiny_model('vanilla_vit', head=3)
    sd = {k.replace('head.linear.', 'head.fc.'): v.clone() + (1 if k.startswith('head.') else 0) for k, v in m.state_dict().items()}
    assert 'head.fc.weight' in sd
    m2 = tiny_model('vanilla_vit', head=3)
    m2.load_state_dict(sd, strict=True)
    assert torch.equal(m2.head.linear.weight.detach(), m.head.linear.weight.detach() + 1)

OLD_COMMIT = 'aef5944' # vitzoo with the heads' old names (`LinearHead.fc`, `MLPHead.layers`) and save format 1

_OLD_SAVES = """
import sys, torch
from torch import nn
from vitzoo.factory import tiny_model
from vitzoo.heads import MLPHead
from vitzoo.save import save_model
import vitzoo.heads as h
assert hasattr(h.LinearHead(4, 2), 'fc') # the old vitzoo
out = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(2, 3, 32, 32)
for name, head in [('linear', 3), ('mlp', MLPHead(32, [8], 3, dropout=0.1, activation=nn.PReLU()))]:
    m = tiny_model('vanilla_vit', head=head).eval()
    save_model(m, f'{out}/{name}')
    with torch.no_grad(): torch.save(m(x), f'{out}/{name}.pt')
torch.save(x, f'{out}/x.pt')
"""

@pytest.fixture(scope='module')
def old_saves(tmp_path_factory):
    "Folders written by `save_model` of the vitzoo at `OLD_COMMIT` (a LinearHead and an MLPHead), and their outputs"
    if subprocess.run(['git', '-C', str(REPO), 'cat-file', '-e', f'{OLD_COMMIT}^{{commit}}'], capture_output=True).returncode:
        pytest.skip(f'this checkout lacks commit {OLD_COMMIT} (a shallow clone?)')
    d = tmp_path_factory.mktemp('old-vitzoo')
    subprocess.run(f"git -C {REPO} archive {OLD_COMMIT} vitzoo | tar -x -C {d}", shell=True, check=True)
    env = {**os.environ, 'PYTHONPATH': str(d), 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    (d/'saves').mkdir()
    subprocess.run([sys.executable, '-c', _OLD_SAVES, str(d/'saves')], env=env, cwd=d, check=True, capture_output=True)
    return d/'saves'

@pytest.mark.parametrize('head', ['linear', 'mlp'])
def test_load_model_reads_old_saves(old_saves, head):
    from safetensors import safe_open
    from vitzoo.save import load_model
    with safe_open(old_saves/head/'model.safetensors', framework='pt') as f:
        assert any(k.startswith('head.fc.' if head == 'linear' else 'head.layers.') for k in f.keys())
    m = load_model(old_saves/head)
    with torch.no_grad(): assert torch.equal(m(torch.load(old_saves/'x.pt')), torch.load(old_saves/f'{head}.pt'))
    assert type(m.head).__name__ == {'linear': 'LinearHead', 'mlp': 'MLPHead'}[head]
    if head == 'mlp': assert isinstance(m.head.activation, nn.PReLU) and m.head.mlp[2].p == 0.1

# ---- heads' new arguments survive save_model/load_model ----

def test_save_load_new_head_args(tmp_path):
    from vitzoo.factory import tiny_model
    from vitzoo.heads import LinearHead, MLPHead
    from vitzoo.save import save_model, load_model, head_config
    x = torch.randn(4, 3, 32, 32)
    for i, head in enumerate([MLPHead(32, [16, 8], 3, 'tanh', 0.1, use_batch_norm=True), LinearHead(32, 5, bias=False, dropout=0.2)]):
        m = tiny_model('dino_v2_vit', head=head)
        m.train()
        with torch.no_grad(): m(x) # moves the BatchNorm running statistics off their initial values
        m.eval()
        save_model(m, tmp_path/str(i))
        m2 = load_model(tmp_path/str(i))
        assert repr(m2.head) == repr(m.head) and head_config(m2.head) == head_config(m.head)
        with torch.no_grad(): assert torch.equal(m(x), m2(x))
    assert m2.head.linear.bias is None
    assert json.loads((tmp_path/'0'/'vitzoo.json').read_text())['head']['config']['use_batch_norm'] is True

# ---- ViTBackbone ----

@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    "A tiny random ViT saved with `save_pretrained`, standing in for a hub checkpoint"
    from vitzoo.factory import tiny_model
    d = tmp_path_factory.mktemp('ckpt')/'tiny-vit'
    tiny_model('vanilla_vit').backbone.save_pretrained(d)
    return d

def test_vit_backbone(tiny_ckpt):
    from vitzoo.components import ViTBackbone
    bb = ViTBackbone(transformers.ViTModel, str(tiny_ckpt), config_kwargs={'hidden_dropout_prob': 0.1, 'attn_implementation': 'sdpa'})
    assert isinstance(bb.backbone, transformers.ViTModel) and bb.backbone.config.hidden_dropout_prob == 0.1
    assert bb.get_embedding_dim() == 32 and bb.pretrained and bb.backbone.pooler is None
    out = bb(torch.randn(2, 3, 32, 32), output_attentions=True, output_hidden_states=True)
    assert isinstance(out, dict) and out['last_hidden_state'].shape == (2, 17, 32)
    assert len(out['attentions']) == 2 and len(out['hidden_states']) == 3
    assert bb.backbone.config._attn_implementation == 'sdpa'
    assert torch.equal(bb.get_cls_token_embedding(out), out['last_hidden_state'][:, 0])
    pooled = torch.randn(2, 32)
    assert bb.get_cls_token_embedding({'pooler_output': pooled, 'last_hidden_state': torch.randn(2, 17, 32)}) is pooled
    with pytest.raises(ValueError, match='Backbone output must contain'): bb.get_cls_token_embedding({})
    assert ViTBackbone(transformers.ViTModel, str(tiny_ckpt), backbone_dropout=0.3).backbone.config.attention_probs_dropout_prob == 0.3
    assert not ViTBackbone('ViTModel', str(tiny_ckpt), load_pretrained=False).pretrained

def test_vit_model_takes_vit_backbone(tiny_ckpt):
    from vitzoo import ViTModel
    from vitzoo.components import ViTBackbone, LinearHead, IdentityHead
    bb = ViTBackbone(transformers.ViTModel, str(tiny_ckpt))
    model = ViTModel(backbone=bb, head=LinearHead(32, 4), freeze_backbone=True)
    assert model.backbone is bb.backbone and model.spec == bb.spec and model.embedding_dim == bb.get_embedding_dim()
    assert not any(p.requires_grad for p in bb.parameters()) and all(p.requires_grad for p in model.head.parameters())
    model.freeze_backbone(freeze=False)
    assert all(p.requires_grad for p in bb.parameters())
    assert isinstance(ViTModel(backbone=bb, head=None).head, IdentityHead)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    out = model(x, output_attentions=True, output_embeddings=True)
    assert out['predictions'].shape == (2, 4) and len(out['attentions']) == 2
    with torch.no_grad(): assert torch.allclose(out['embeddings'], bb.eval().get_cls_token_embedding(bb(x)), atol=1e-6)

# ---- vit_zoo's own tests, from a checkout ----

@pytest.mark.skipif(not os.environ.get('VITZOO_SEED_PATH'), reason='set VITZOO_SEED_PATH to a vit_zoo checkout to run its tests against vitzoo')
def test_seed_compat():
    r = subprocess.run([sys.executable, str(REPO/'tools'/'seed_compat.py'), os.environ['VITZOO_SEED_PATH']],
                       capture_output=True, text=True)
    print(r.stdout[-6000:], r.stderr[-2000:])
    assert re.search(r'vit_zoo tests: \d+ of \d+ passed', r.stdout)
    assert r.returncode == 0, 'failures outside tools/seed_compat.py EXPECTED (see the output above)'
