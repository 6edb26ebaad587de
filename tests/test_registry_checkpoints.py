"""Every official checkpoint in the registry: its architecture, parameter count (exact, and against published counts),
its preprocessing, and offline builds. Parameter counts build each backbone on the meta device (no memory, a few
seconds for all of them, the 6.7B-parameter DINOv3 7B included); `VITZOO_TEST_FLAGS=slow` adds a cross-check against timm's
independent implementations."""
import os, subprocess, sys
import pytest, torch, transformers
from vitzoo.registry import (FAMILIES, DEFAULT_MODELS, get_spec, list_models, processor_fields, spec_for_checkpoint,
                             register_model, unregister_model)

SLOW = pytest.mark.skipif('slow' not in os.environ.get('VITZOO_TEST_FLAGS', ''), reason='set VITZOO_TEST_FLAGS=slow')
OFFICIAL = [n for n in list_models() if spec_for_checkpoint(get_spec(n).checkpoint).name == n]
SEEDS = ['vanilla_vit', 'deit_vit', 'dino_vit', 'dino_v2_vit', 'dinov2_vit', 'dinov2_reg_vit', 'dinov3_vit', 'clip_vit']

# Published parameter counts: (figure, tolerance, source). keras-hub's presets give exact counts of the same converted
# checkpoints (for DINOv2 keras-hub keeps a second, interpolated copy of the 37x37+1 position table, and for CLIP it counts
# the whole model plus the vision position ids it stores as a weight: the tests undo both). The papers and READMEs round.
_K = 'keras-hub presets (keras-team/keras-hub, keras_hub/src/models/{}/{}_presets.py)'
KERAS_VIT, KERAS_DEIT, KERAS_DINOV2, KERAS_CLIP = (_K.format(m, m) for m in ('vit', 'deit', 'dinov2', 'clip'))
DEIT_PAPER = 'DeiT paper (Touvron et al. 2021) Table 1 / facebookresearch/deit README: 5M, 22M, 86M (with the 1000-class head)'
DINO_README = 'facebookresearch/dino README, pretrained models table: 21M, 21M, 85M, 85M'
DINOV3_README = 'facebookresearch/dinov3 README, pretrained backbones table: 21M, 29M, 86M, 300M, 840M, 6,716M'
M = 1_000_000
PUBLISHED = {
    'vit-base-patch16-224': (85_798_656, 0, KERAS_VIT), 'vit-base-patch16-384': (86_090_496, 0, KERAS_VIT),
    'vit-base-patch32-384': (87_528_192, 0, KERAS_VIT), 'vit-large-patch16-224': (303_301_632, 0, KERAS_VIT),
    'vit-large-patch16-384': (303_690_752, 0, KERAS_VIT), 'vit-large-patch32-384': (305_607_680, 0, KERAS_VIT),
    'vit-base-patch16-224-in21k': (85_798_656, 0, KERAS_VIT), 'vit-base-patch32-224-in21k': (87_455_232, 0, KERAS_VIT),
    'vit-large-patch16-224-in21k': (303_301_632, 0, KERAS_VIT), 'vit-large-patch32-224-in21k': (305_510_400, 0, KERAS_VIT),
    'vit-huge-patch14-224-in21k': (630_764_800, 0, KERAS_VIT),
    'deit-tiny-distilled-patch16-224': (5_524_800, 0, KERAS_DEIT), 'deit-small-distilled-patch16-224': (21_666_432, 0, KERAS_DEIT),
    'deit-base-distilled-patch16-224': (85_800_192, 0, KERAS_DEIT), 'deit-base-distilled-patch16-384': (86_092_032, 0, KERAS_DEIT),
    'deit-tiny-patch16-224': (5*M, 1*M, DEIT_PAPER), 'deit-small-patch16-224': (22*M, 1*M, DEIT_PAPER),
    'deit-base-patch16-224': (86*M, 1*M, DEIT_PAPER), 'deit-base-patch16-384': (86*M, 1*M, DEIT_PAPER),
    'dino-vits8': (21*M, 1*M, DINO_README), 'dino-vits16': (21*M, 1*M, DINO_README),
    'dino-vitb8': (85*M, 1*M, DINO_README), 'dino-vitb16': (85*M, 1*M, DINO_README),
    'dinov2-small': (22_582_656, 0, KERAS_DINOV2), 'dinov2-base': (87_632_640, 0, KERAS_DINOV2),
    'dinov2-large': (305_771_520, 0, KERAS_DINOV2), 'dinov2-giant': (1_138_585_088, 0, KERAS_DINOV2),
    'dinov2-with-registers-small': (22_584_192, 0, KERAS_DINOV2), 'dinov2-with-registers-base': (87_635_712, 0, KERAS_DINOV2),
    'dinov2-with-registers-large': (305_775_616, 0, KERAS_DINOV2), 'dinov2-with-registers-giant': (1_138_591_232, 0, KERAS_DINOV2),
    # "300M" and "840M" are printed to the nearest 10M, the others to the million
    'dinov3-vits16-pretrain-lvd1689m': (21*M, 1*M, DINOV3_README), 'dinov3-vits16plus-pretrain-lvd1689m': (29*M, 1*M, DINOV3_README),
    'dinov3-vitb16-pretrain-lvd1689m': (86*M, 1*M, DINOV3_README), 'dinov3-vitl16-pretrain-lvd1689m': (300*M, 5*M, DINOV3_README),
    'dinov3-vith16plus-pretrain-lvd1689m': (840*M, 5*M, DINOV3_README), 'dinov3-vit7b16-pretrain-lvd1689m': (6_716*M, 1*M, DINOV3_README),
    'dinov3-vitl16-pretrain-sat493m': (300*M, 5*M, DINOV3_README), 'dinov3-vit7b16-pretrain-sat493m': (6_716*M, 1*M, DINOV3_README),
    'clip-vit-base-patch32': (151_277_363, 0, KERAS_CLIP), 'clip-vit-base-patch16': (149_620_934, 0, KERAS_CLIP),
    'clip-vit-large-patch14': (427_616_770, 0, KERAS_CLIP), 'clip-vit-large-patch14-336': (427_944_770, 0, KERAS_CLIP),
}
# the text towers of OpenAI's CLIP checkpoints (for the whole-model counts keras-hub publishes)
CLIP_TEXT = {'base': dict(hidden_size=512, num_attention_heads=8, intermediate_size=2048),
             'large': dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072)}

def _cfg(spec):
    "The transformers config of `spec`"
    cls = getattr(transformers, spec.backbone_cls)
    return cls, cls.config_class(**{k: v for k, v in spec.config.items() if k != 'model_type'})

def _meta_params(spec)->int:
    "Parameters of `spec`'s backbone, built from its config on the meta device"
    cls, cfg = _cfg(spec)
    with torch.device('meta'): m = cls(cfg, **FAMILIES[spec.model_type].init_kwargs)
    return sum(p.numel() for p in m.parameters())

def _published_comparable(name:str, spec)->int:
    "The published figure of `name` turned into a backbone count (undoing keras-hub's extra DINOv2 table and CLIP's whole model)"
    figure = PUBLISHED[name][0]
    if PUBLISHED[name][2] == KERAS_DINOV2: return figure - (518//14)**2*spec.embed_dim - spec.embed_dim
    if PUBLISHED[name][2] == KERAS_CLIP:
        v = spec.config
        cfg = transformers.CLIPConfig(vision_config={k: x for k, x in v.items() if k != 'model_type'},
                                      text_config=CLIP_TEXT['large' if v['hidden_size'] == 1024 else 'base'], projection_dim=v['projection_dim'])
        with torch.device('meta'): whole = transformers.CLIPModel(cfg)
        n_pos = (v['image_size']//v['patch_size'])**2 + 1
        return figure - n_pos - (sum(p.numel() for p in whole.parameters()) - spec.n_params)
    return figure

def test_registry_covers_the_official_checkpoints():
    assert len(OFFICIAL) == 43 and set(OFFICIAL) == set(PUBLISHED)
    assert set(list_models()) == set(OFFICIAL) | set(SEEDS)
    assert tuple(s for s in SEEDS if s != 'dinov2_vit') == DEFAULT_MODELS
    for n in OFFICIAL: assert get_spec(n).checkpoint.split('/')[1] == n
    for n in SEEDS: assert get_spec(n).checkpoint == get_spec(get_spec(n).checkpoint.split('/')[1]).checkpoint

@pytest.mark.parametrize('name', OFFICIAL)
def test_parameter_count_exact_and_published(name):
    "The backbone built from the registry config has exactly `n_params` parameters, and matches the published count"
    spec = get_spec(name)
    assert _meta_params(spec) == spec.n_params, name
    figure, tol, source = PUBLISHED[name]
    assert abs(spec.n_params - _published_comparable(name, spec)) <= tol, (name, spec.n_params, figure, source)

@pytest.mark.parametrize('name', OFFICIAL)
def test_config_and_processor_are_what_transformers_reads(name):
    "Every config key survives the transformers config class; the processor dict builds its HF image processor unchanged"
    spec = get_spec(name)
    _, cfg = _cfg(spec)
    d = cfg.to_dict()
    for k, v in spec.config.items(): assert d[k] == v, (name, k, d[k], v)
    p = spec.processor
    proc = getattr(transformers, p['image_processor_type']).from_dict(p).to_dict()
    for k, v in p.items():
        got = proc[k]
        assert (list(got) if isinstance(got, tuple) else got) == v, (name, k, got, v)
    f = processor_fields(p)
    assert (spec.mean, spec.std, spec.image_size, spec.crop_pct, spec.interpolation) == \
           (f['mean'], f['std'], f['image_size'], f['crop_pct'], f['interpolation'])
    assert spec.image_size % spec.patch_size == 0

def test_known_architecture_details():
    "The fields where the transformers class defaults differ from the checkpoints"
    g = get_spec('dinov2-giant').config
    assert (g['hidden_size'], g['num_hidden_layers'], g['num_attention_heads'], g['use_swiglu_ffn']) == (1536, 40, 24, True)
    s7 = get_spec('dinov3-vit7b16-pretrain-lvd1689m').config
    assert (s7['intermediate_size'], s7['use_gated_mlp'], s7['hidden_act'], s7['query_bias'], s7['value_bias']) == (8192, True, 'silu', False, False)
    assert get_spec('dinov3-vits16plus-pretrain-lvd1689m').config['use_gated_mlp'] is True
    assert get_spec('dinov3-vith16plus-pretrain-lvd1689m').config['num_attention_heads'] == 20
    assert {get_spec(n).config['num_register_tokens'] for n in list_models('dinov3*') + list_models('dinov2-with-registers*')} == {4}
    sat, lvd = get_spec('dinov3-vitl16-pretrain-sat493m'), get_spec('dinov3-vitl16-pretrain-lvd1689m')
    assert sat.config == lvd.config and sat.mean == (0.430, 0.411, 0.296) and sat.std == (0.213, 0.156, 0.143)
    assert get_spec('deit-base-patch16-224').backbone_cls == 'ViTModel' and get_spec('deit-base-distilled-patch16-224').num_prefix_tokens == 2
    assert get_spec('deit-base-patch16-384').crop_pct == 384/438 and get_spec('clip-vit-large-patch14-336').image_size == 336

SMALL = [n for n in OFFICIAL if get_spec(n).n_params <= 30_000_000]

@pytest.mark.parametrize('name', SMALL)
def test_small_checkpoints_build_offline(name, monkeypatch):
    "build_model(name, load_pretrained=False) builds the real architecture with the hub offline"
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    from vitzoo.factory import build_model
    spec = get_spec(name)
    m = build_model(name, load_pretrained=False)
    assert sum(p.numel() for p in m.backbone.parameters()) == spec.n_params
    assert m.embedding_dim == spec.embed_dim and m.backbone.config.model_type == spec.model_type

def test_spec_for_checkpoint():
    assert spec_for_checkpoint('facebook/dinov2-small').name == 'dinov2-small'
    assert spec_for_checkpoint('facebook/dinov2-base').name == 'dinov2-base' # not dino_v2_vit or dinov2_vit
    assert spec_for_checkpoint('facebook/dinov2-tiny') is None
    for n in OFFICIAL: assert spec_for_checkpoint(get_spec(n).checkpoint).name == n

def test_unknown_name_message():
    with pytest.raises(ValueError, match=r"Unsupported model_type 'dinov2-smal'\. Did you mean 'dinov2-small'.*See list_models\(\)") as e:
        get_spec('dinov2-smal')
    assert 'vit-large-patch32-384' not in str(e.value) # no longer the whole list of names

def test_import_does_not_load_transformers():
    code = "import sys, vitzoo.registry as r; r.list_models(); r.get_spec('dinov2-giant'); assert 'transformers' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, '-c', code], check=True)

def test_model_registry_stays_in_step():
    from vitzoo.factory.registry import MODEL_REGISTRY, list_models as lm
    import vitzoo.registry as R
    assert isinstance(MODEL_REGISTRY, dict) and MODEL_REGISTRY is R.MODEL_REGISTRY and set(MODEL_REGISTRY) == set(lm())
    MODEL_REGISTRY.update({'t_small': (transformers.Dinov2Model, 'facebook/dinov2-small')})
    try:
        assert get_spec('t_small').n_params == 22_056_576 and set(MODEL_REGISTRY) == set(lm())
        register_model('t_other', 'ViTModel', 'me/vit')
        assert MODEL_REGISTRY['t_other'] == (transformers.ViTModel, 'me/vit')
        unregister_model('t_other')
        assert 't_other' not in MODEL_REGISTRY
    finally:
        del MODEL_REGISTRY['t_small']
    assert 't_small' not in lm() and set(MODEL_REGISTRY) == set(lm())
    with pytest.raises(TypeError, match=r"MODEL_REGISTRY\['bad'\] = .* is not a \(model class, checkpoint\) pair"):
        MODEL_REGISTRY['bad'] = 'facebook/dinov2-small'

# timm's names of the same architectures, and what transformers' backbone has that timm's lacks
TIMM = {'vit-base-patch16-224': 'vit_base_patch16_224', 'vit-base-patch16-384': 'vit_base_patch16_384', 'vit-base-patch32-384': 'vit_base_patch32_384',
        'vit-large-patch16-224': 'vit_large_patch16_224', 'vit-large-patch16-384': 'vit_large_patch16_384', 'vit-large-patch32-384': 'vit_large_patch32_384',
        'vit-base-patch16-224-in21k': 'vit_base_patch16_224', 'vit-base-patch32-224-in21k': 'vit_base_patch32_224',
        'vit-large-patch16-224-in21k': 'vit_large_patch16_224', 'vit-large-patch32-224-in21k': 'vit_large_patch32_224',
        'vit-huge-patch14-224-in21k': 'vit_huge_patch14_224',
        'deit-tiny-patch16-224': 'deit_tiny_patch16_224', 'deit-small-patch16-224': 'deit_small_patch16_224',
        'deit-base-patch16-224': 'deit_base_patch16_224', 'deit-base-patch16-384': 'deit_base_patch16_384',
        'deit-tiny-distilled-patch16-224': 'deit_tiny_distilled_patch16_224', 'deit-small-distilled-patch16-224': 'deit_small_distilled_patch16_224',
        'deit-base-distilled-patch16-224': 'deit_base_distilled_patch16_224', 'deit-base-distilled-patch16-384': 'deit_base_distilled_patch16_384',
        'dino-vits8': 'vit_small_patch8_224', 'dino-vits16': 'vit_small_patch16_224', 'dino-vitb8': 'vit_base_patch8_224', 'dino-vitb16': 'vit_base_patch16_224',
        'dinov2-small': 'vit_small_patch14_dinov2', 'dinov2-base': 'vit_base_patch14_dinov2', 'dinov2-large': 'vit_large_patch14_dinov2',
        'dinov2-giant': 'vit_giant_patch14_dinov2', 'dinov2-with-registers-small': 'vit_small_patch14_reg4_dinov2',
        'dinov2-with-registers-base': 'vit_base_patch14_reg4_dinov2', 'dinov2-with-registers-large': 'vit_large_patch14_reg4_dinov2',
        'dinov2-with-registers-giant': 'vit_giant_patch14_reg4_dinov2',
        'dinov3-vits16-pretrain-lvd1689m': 'vit_small_patch16_dinov3', 'dinov3-vits16plus-pretrain-lvd1689m': 'vit_small_plus_patch16_dinov3',
        'dinov3-vitb16-pretrain-lvd1689m': 'vit_base_patch16_dinov3', 'dinov3-vitl16-pretrain-lvd1689m': 'vit_large_patch16_dinov3',
        'dinov3-vith16plus-pretrain-lvd1689m': 'vit_huge_plus_patch16_dinov3', 'dinov3-vit7b16-pretrain-lvd1689m': 'vit_7b_patch16_dinov3',
        'dinov3-vitl16-pretrain-sat493m': 'vit_large_patch16_dinov3', 'dinov3-vit7b16-pretrain-sat493m': 'vit_7b_patch16_dinov3',
        'clip-vit-base-patch32': 'vit_base_patch32_clip_224', 'clip-vit-base-patch16': 'vit_base_patch16_clip_224',
        'clip-vit-large-patch14': 'vit_large_patch14_clip_224', 'clip-vit-large-patch14-336': 'vit_large_patch14_clip_336'}

def _hf_extra(spec)->int:
    "Parameters transformers' backbone has and timm's lacks: DINOv2/v3's mask token, DINOv2-with-registers' CLS position (timm's `no_embed_class`), DINOv3's query and value biases (zero in the weights, dropped by timm)"
    c, d = spec.config, spec.embed_dim
    extra = d if spec.model_type in ('dinov2', 'dinov2_with_registers', 'dinov3_vit') else 0
    if spec.model_type == 'dinov2_with_registers': extra += d
    if spec.model_type == 'dinov3_vit': extra += c['num_hidden_layers'] * d * (c['query_bias'] + c['value_bias'])
    return extra

@SLOW
@pytest.mark.parametrize('name', OFFICIAL)
def test_parameter_count_matches_timm(name):
    "timm's independent implementation of the same architecture has the same parameters (bar the documented differences)"
    timm = pytest.importorskip('timm')
    spec = get_spec(name)
    kw = dict(img_size=spec.config['image_size']) if spec.model_type.startswith('dinov2') else {}
    with torch.device('meta'): m = timm.create_model(TIMM[name], pretrained=False, num_classes=0, **kw)
    assert sum(p.numel() for p in m.parameters()) + _hf_extra(spec) == spec.n_params, name

@pytest.mark.parametrize('name', list_models())
def test_build_model_offline_every_name(name):
    "`build_model(name, load_pretrained=False)` takes the factory's whole offline path for every registered name (on the meta device, so the 7B fits)"
    from vitzoo.factory import build_model
    with torch.device('meta'): m = build_model(name, load_pretrained=False)
    assert sum(p.numel() for p in m.backbone.parameters()) == get_spec(name).n_params
    assert m.spec.checkpoint == get_spec(name).checkpoint and m.embed_dim == get_spec(name).embed_dim
