"vitzoo and transformers' own loaders: family auto-detection, saved folders as HF checkpoints, preprocessor configs, HF-style arguments"
import hashlib, json, os, uuid, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import pytest, torch, transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModel, AutoModelForImageClassification, AutoImageProcessor
from vitzoo.factory import build_model, tiny_model, tiny_config, TINY, CheckpointNotFoundError
from vitzoo.heads import LinearHead, MLPHead
from vitzoo.model import VitZooModel
from vitzoo.registry import DEFAULT_MODELS, get_spec
from vitzoo.save import load_model, save_model, processor_config, CheckpointError, META_NAME, PROCESSOR_NAME

transformers.logging.set_verbosity_error()
X = torch.randn(2, 3, 32, 32)
HF_CLASSIFIES = {'vit': 'cls', 'deit': 'cls', 'dinov2': 'cls+mean', 'dinov2_with_registers': 'cls+mean'} # transformers' *ForImageClassification pooling

def equal_state(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

# --- 1. the family from the checkpoint's config -----------------------------------------------------------------------------------
@pytest.mark.parametrize('name', DEFAULT_MODELS)
def test_model_name_alone_picks_the_class(tmp_path, name):
    src = tiny_model(name).backbone
    src.save_pretrained(tmp_path/'hf')
    m = build_model(model_name=tmp_path/'hf', head=3)
    assert type(m.backbone) is type(src) and m.pretrained
    assert equal_state(m.backbone.state_dict(), src.state_dict())

def test_task_and_full_clip_checkpoints(tmp_path):
    clf = transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, num_labels=5))
    clf.save_pretrained(tmp_path/'clf')
    m = build_model(model_name=str(tmp_path/'clf'))
    assert type(m.backbone).__name__ == 'ViTModel' and m.loading_info['ignored_keys'] == ['classifier.bias', 'classifier.weight']
    assert equal_state(m.backbone.state_dict(), clf.vit.state_dict())
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    transformers.CLIPModel(transformers.CLIPConfig(vision_config=TINY, text_config=text)).save_pretrained(tmp_path/'clip')
    assert type(build_model(model_name=tmp_path/'clip').backbone).__name__ == 'CLIPVisionModel'

def test_official_ids_build_offline():
    for kw in [dict(model_name='google/vit-large-patch16-224', backbone_cls=transformers.ViTModel),
               dict(model_type='vanilla_vit', model_name='google/vit-large-patch16-224')]:
        m = build_model(**kw, load_pretrained=False, config_kwargs=dict(num_hidden_layers=1)) # one block: fast; the width is ViT-L's
        assert (m.embed_dim, m.config.intermediate_size, m.spec.name) == (1024, 4096, 'vit-large-patch16-224')
    m = build_model(model_name='facebook/deit-tiny-distilled-patch16-224', load_pretrained=False)
    assert (type(m.backbone).__name__, m.embed_dim, m.num_prefix_tokens, m.spec.name) == ('DeiTModel', 192, 2, 'deit-tiny-distilled-patch16-224')
    with pytest.raises(CheckpointNotFoundError, match='hf download facebook/dinov2-small'): build_model(model_name='facebook/dinov2-small')

def test_detection_errors(tmp_path):
    with pytest.raises(ValueError, match=r"To use a non-default ViT backbone, pass model_name .*backbone_cls=<class"):
        build_model(backbone_cls=transformers.ViTModel)
    with pytest.raises(ValueError, match="'google/vit-base-patch16-224' is a 'vit' checkpoint .* but model_type 'dino_v2_vit' builds a 'dinov2'"):
        build_model('dino_v2_vit', model_name='google/vit-base-patch16-224', load_pretrained=False)
    with pytest.raises(ValueError, match="backbone_cls Dinov2Model builds a 'dinov2' model; drop backbone_cls"):
        build_model(model_name='google/vit-base-patch16-224', backbone_cls='Dinov2Model', load_pretrained=False)
    transformers.SwinConfig().save_pretrained(tmp_path/'swin')
    with pytest.raises(ValueError, match="Unsupported model_type 'swin' in the config of"): build_model(model_name=tmp_path/'swin', load_pretrained=False)
    (tmp_path/'nomt').mkdir(); (tmp_path/'nomt'/'config.json').write_text('{"hidden_size": 32}')
    with pytest.raises(ValueError, match='names no model_type'): build_model(model_name=tmp_path/'nomt', load_pretrained=False)
    with pytest.raises(FileNotFoundError, match='has no config.json'): build_model(model_name=tmp_path)

# --- 2. a saved folder is the backbone's HF checkpoint, never a misleading one -----------------------------------------------------------
@pytest.mark.parametrize('name', DEFAULT_MODELS)
def test_saved_folder_loads_in_transformers(tmp_path, name):
    for i, (head, pooling) in enumerate([(3, 'cls'), (3, 'cls+mean'), (None, 'cls'), (MLPHead(32, [8], 3), 'cls')]):
        m = tiny_model(name, head=head, pooling=pooling).eval()
        d = m.save_pretrained(tmp_path/str(i))
        hf, info = AutoModel.from_pretrained(d, output_loading_info=True, **({'add_pooling_layer': False} if name in ('vanilla_vit', 'dino_vit', 'deit_vit') else {}))
        assert type(hf) is type(m.backbone) and not info['missing_keys'] and not info['mismatched_keys']
        assert equal_state(hf.state_dict(), m.backbone.state_dict())
        kw = dict(interpolate_pos_encoding=True) if m.family.interpolate else {}
        assert torch.equal(hf.eval()(X, **kw).last_hidden_state, m.backbone(X, **kw).last_hidden_state)
        exact = HF_CLASSIFIES.get(m.config.model_type) == pooling and not isinstance(head, MLPHead)
        if exact: assert torch.equal(AutoModelForImageClassification.from_pretrained(d).eval()(X).logits, m(X))
        else:
            with pytest.raises((RuntimeError, ValueError)): AutoModelForImageClassification.from_pretrained(d) # never a random classifier
        assert equal_state(load_model(d).state_dict(), m.state_dict())

def test_bf16_and_deit_teacher(tmp_path):
    m = tiny_model('deit_vit', head=3).to(torch.bfloat16).eval()
    d = m.save_pretrained(tmp_path/'a')
    hf = AutoModel.from_pretrained(d, add_pooling_layer=False)
    assert hf.dtype == torch.bfloat16 and equal_state(hf.state_dict(), m.backbone.state_dict())
    with pytest.raises(RuntimeError): transformers.DeiTForImageClassificationWithTeacher.from_pretrained(d) # averages two heads: not the model

def test_format_1_saves_still_load(tmp_path):
    "A folder as vitzoo 0.0.1 wrote it: every tensor under VitZooModel's names, the linear head as `fc`"
    m = tiny_model('dino_v2_vit', head=3).eval()
    d, cid = tmp_path/'old', uuid.uuid4().hex
    d.mkdir()
    cfg = m.config.to_json_string(use_diff=False).encode()
    (d/'config.json').write_bytes(cfg)
    state = {k.replace('head.linear.', 'head.fc.'): v.contiguous() for k, v in m.state_dict().items()}
    save_file(state, d/'model.safetensors', metadata=dict(format='pt', vitzoo_checkpoint_id=cid))
    meta = dict(format='vitzoo', format_version=1, vitzoo_version='0.0.1', checkpoint_id=cid, config_sha256=hashlib.sha256(cfg).hexdigest(),
                backbone_cls='Dinov2Model', model_type='dinov2', attn_implementation='sdpa', dtype='float32', pooling='cls',
                registry_name='dino_v2_vit', spec=None,
                head={'class': 'LinearHead', 'config': dict(input_dim=32, output_dim=3, dropout=0.0)}, pretrained=False,
                backbone_frozen=False, default_outputs=dict(output_attentions=False, output_embeddings=False), aliases={})
    (d/META_NAME).write_text(json.dumps(meta))
    m2 = load_model(d)
    assert torch.equal(m2(X), m(X))
    save_model(m2, d) # saving over it writes the new layout
    assert json.loads((d/META_NAME).read_text())['format_version'] == 2
    assert torch.equal(AutoModel.from_pretrained(d)(X).last_hidden_state, m.backbone(X).last_hidden_state)

# --- 3. preprocessor_config.json ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', DEFAULT_MODELS)
def test_preprocessor_config(tmp_path, name):
    spec = get_spec(name)
    m = VitZooModel(tiny_model(name).backbone, spec=spec) # the registry's spec, at the checkpoint's resolution
    d = save_model(m, tmp_path/'full')
    written = json.loads((d/PROCESSOR_NAME).read_text())
    if spec.processor: assert {k: written[k] for k in spec.processor} == json.loads(json.dumps(spec.processor))
    p = AutoImageProcessor.from_pretrained(d)
    img = Image.fromarray((torch.rand(61, 83, 3) * 255).byte().numpy())
    ref = type(p)(**{k: v for k, v in written.items() if k != 'image_processor_type'})
    out = p(img, return_tensors='pt')['pixel_values']
    assert torch.equal(out, ref(img, return_tensors='pt')['pixel_values'])
    assert out.shape[-1] == spec.image_size and torch.allclose(torch.tensor(p.image_mean), torch.tensor(spec.mean))
    tiny = tiny_model(name).save_pretrained(tmp_path/'tiny') # a model built for 32 px gets the recipe scaled to 32 px
    assert AutoImageProcessor.from_pretrained(tiny)(img, return_tensors='pt')['pixel_values'].shape[-2:] == (32, 32)

def test_no_spec_no_preprocessor(tmp_path):
    d = tmp_path/'a'
    tiny_model('clip_vit').save_pretrained(d)
    assert (d/PROCESSOR_NAME).exists()
    m = VitZooModel(tiny_model('clip_vit').backbone) # assembled by hand: vitzoo does not know its preprocessing
    assert processor_config(m) is None
    save_model(m, d)
    assert not (d/PROCESSOR_NAME).exists() # the earlier save's file would describe another model

# --- 4. transformers' from_pretrained / save_pretrained arguments ------------------------------------------------------------------
def test_from_pretrained_arguments(tmp_path):
    m = tiny_model('dino_v2_vit', head=3).eval()
    d = m.save_pretrained(tmp_path/'a', safe_serialization=True, max_shard_size='5GB')
    for kw in [dict(dtype='auto'), dict(device_map='cpu'), dict(device_map={'': 'cpu'}), dict(device_map=torch.device('cpu')),
               dict(device_map='auto', local_files_only=True, revision='main', cache_dir=str(tmp_path), token=False, force_download=False)]:
        m2 = VitZooModel.from_pretrained(d, **kw)
        assert torch.equal(m2(X), m(X)) and not m2.training
    for kw in [dict(dtype=torch.bfloat16), dict(torch_dtype='bfloat16'), dict(dtype='bfloat16', torch_dtype=torch.bfloat16)]:
        assert {p.dtype for p in VitZooModel.from_pretrained(d, **kw).parameters()} == {torch.bfloat16}
    (tmp_path/'outer').mkdir(); m.save_pretrained(tmp_path/'outer'/'sub')
    assert torch.equal(VitZooModel.from_pretrained(tmp_path/'outer', subfolder='sub')(X), m(X))
    hf = tiny_model('dino_vit').backbone
    hf.save_pretrained(tmp_path/'hf') # a plain HF checkpoint: the backbone, no head
    m3 = VitZooModel.from_pretrained(tmp_path/'hf', dtype=torch.float16)
    assert m3.backbone.dtype == torch.float16 and type(m3.head).__name__ == 'IdentityHead' and not m3.training

@pytest.mark.parametrize('kw, exc, msg', [
    (dict(device_map='balanced'), ValueError, "device_map='balanced' shards the model"),
    (dict(device_map={'embeddings': 'cpu', 'encoder': 'cuda:0'}), ValueError, 'places parts of the model on different devices'),
    (dict(device_map=[0]), TypeError, 'device_map must be a device'),
    (dict(device='cpu', device_map='cpu'), ValueError, 'not both'),
    (dict(dtype='int8'), ValueError, "dtype='int8' is not a floating point dtype"),
    (dict(dtype='float32', torch_dtype='float16'), ValueError, 'disagree'),
    (dict(trust_remote_code=True), TypeError, r"unsupported argument\(s\) \['trust_remote_code'\] \(trust_remote_code: vitzoo never runs code"),
    (dict(ignore_mismatched_sizes=True, foo=1), TypeError, r"\['ignore_mismatched_sizes', 'foo'\].*takes device, device_map, dtype"),
])
def test_from_pretrained_refuses(tmp_path, kw, exc, msg):
    d = tiny_model('vanilla_vit').save_pretrained(tmp_path/'a')
    with pytest.raises(exc, match=msg): VitZooModel.from_pretrained(d, **kw)

def test_save_pretrained_arguments(tmp_path, monkeypatch):
    m = tiny_model('vanilla_vit', head=2)
    with pytest.raises(ValueError, match='safetensors only'): m.save_pretrained(tmp_path/'a', safe_serialization=False)
    with pytest.raises(TypeError, match=r"unsupported argument\(s\) \['variant'\]; vitzoo's save_pretrained takes safe_serialization"):
        m.save_pretrained(tmp_path/'a', variant='fp16')
    with pytest.raises(ValueError, match="max_shard_size='big' is not a size"): m.save_pretrained(tmp_path/'a', max_shard_size='big')
    assert not (tmp_path/'a').exists()
    with pytest.warns(UserWarning, match='as one model.safetensors'): m.save_pretrained(tmp_path/'a', max_shard_size='10KB')
    assert m.save_pretrained(tmp_path/'b', is_main_process=False) == tmp_path/'b' and not (tmp_path/'b').exists()
    calls = []
    class FakeApi:
        def __init__(self, token=None): calls.append(('token', token))
        def create_repo(self, repo_id, private=None, exist_ok=False): calls.append(('create', repo_id, private))
        def upload_folder(self, repo_id, folder_path, commit_message, revision=None, allow_patterns=None):
            calls.append(('upload', repo_id, sorted(allow_patterns), sorted(os.listdir(folder_path))))
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'HfApi', FakeApi)
    (tmp_path/'c').mkdir(); (tmp_path/'c'/'notes.txt').write_text('mine')
    m.save_pretrained(tmp_path/'c', push_to_hub=True, repo_id='me/tiny', token='t', private=True)
    files = ['config.json', 'model.safetensors', 'preprocessor_config.json', 'vitzoo.json']
    assert calls == [('token', 't'), ('create', 'me/tiny', True), ('upload', 'me/tiny', files, sorted(files + ['notes.txt']))]
    calls.clear(); m.save_pretrained(tmp_path/'my-model', push_to_hub=True) # the repo is named after the folder, as in transformers
    assert calls[1] == ('create', 'my-model', None)

def test_from_pretrained_hub_ids_from_the_cache(tmp_path):
    "A vitzoo repo and a plain HF repo in the HF cache (written by hand: no network), opened by their ids"
    import shutil
    m, hf = tiny_model('dino_vit', head=3).eval(), tiny_model('dino_v2_vit').backbone.eval()
    for repo, write in [('me/tiny-vitzoo', m.save_pretrained), ('me/tiny-hf', hf.save_pretrained)]:
        snap = tmp_path/'hub'/f"models--{repo.replace('/', '--')}"
        (snap/'refs').mkdir(parents=True); (snap/'refs'/'main').write_text('0'*40)
        write(tmp_path/'src'/repo); shutil.copytree(tmp_path/'src'/repo, snap/'snapshots'/('0'*40))
    m2 = VitZooModel.from_pretrained('me/tiny-vitzoo', cache_dir=str(tmp_path/'hub'))
    assert equal_state(m2.state_dict(), m.state_dict()) and m2.spec == m.spec
    m3 = VitZooModel.from_pretrained('me/tiny-hf', cache_dir=str(tmp_path/'hub'))
    assert type(m3.backbone).__name__ == 'Dinov2Model' and equal_state(m3.backbone.state_dict(), hf.state_dict())
    with pytest.raises(CheckpointNotFoundError, match="Could not load 'me/not-there'"):
        VitZooModel.from_pretrained('me/not-there', cache_dir=str(tmp_path/'hub'))
