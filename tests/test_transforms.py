"`vitzoo.transforms` against transformers' own image processors, built offline from the registry's processor dicts."
import json, os, tempfile
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images
from transformers import AutoImageProcessor
from transformers.utils import logging as hf_logging
from vitzoo.registry import get_spec, list_models
from vitzoo.transforms import checkpoint_transforms, transforms_from_processor

hf_logging.set_verbosity_error()
PHOTOS = [Image.fromarray(a) for a in load_sample_images().images] # china.jpg, flower.jpg: 427x640
SEEDS = ['vanilla_vit', 'deit_vit', 'dino_vit', 'dino_v2_vit', 'dinov2_reg_vit', 'dinov3_vit', 'clip_vit']
ALL = sorted({get_spec(n).checkpoint: n for n in list_models()}.values()) # one name per checkpoint

def hf_processor(d:dict, backend:str|None=None):
    "The processor `AutoImageProcessor` builds from the preprocessor_config.json dict `d`, offline"
    with tempfile.TemporaryDirectory() as f:
        Path(f, 'preprocessor_config.json').write_text(json.dumps(d))
        return AutoImageProcessor.from_pretrained(f, backend=backend)

def diffs(t, p, imgs=PHOTOS):
    return torch.cat([(t(im) - p(im, return_tensors='pt').pixel_values[0]).abs().flatten() for im in imgs])

@pytest.mark.parametrize('name', SEEDS)
def test_seed_families_match_the_default_processor(name):
    d = get_spec(name).processor
    assert d is not None, f'{name} has no processor dict'
    t, p = checkpoint_transforms(name), hf_processor(d)
    assert p.backend == 'torchvision'
    dd = diffs(t, p)
    assert dd.mean() <= 1e-4 and dd.max() <= 1e-5, (name, dd.max().item(), dd.mean().item())

@pytest.mark.parametrize('name', [n for n in SEEDS if n != 'dinov3_vit']) # DINOv3 has no PIL processor in transformers
def test_seed_families_near_the_pil_processor(name):
    t, p = checkpoint_transforms(name), hf_processor(get_spec(name).processor, 'pil')
    assert p.backend == 'pil'
    dd = diffs(t, p)
    assert dd.mean() <= 1e-4 and dd.max() <= 0.05, (name, dd.max().item(), dd.mean().item()) # PIL's and torchvision's uint8 resampling differ by a level here and there

def test_every_registered_checkpoint_matches():
    "Every checkpoint in the registry, on one photo (its processor dict is the registry's)"
    bad = {}
    for n in ALL:
        d = get_spec(n).processor
        if d is None: bad[n] = 'no processor dict'; continue
        dd = diffs(checkpoint_transforms(n), hf_processor(d), PHOTOS[:1])
        if not dd.max() <= 1e-5: bad[n] = dd.max().item()
    assert not bad, bad

def test_fastai_transforms_match_the_callable():
    from fastai.vision.all import IntToFloatTensor, PILImage, Pipeline, ToTensor
    for n in SEEDS:
        t = checkpoint_transforms(n)
        item, batch = Pipeline(t.item_tfms + [ToTensor()]), Pipeline([IntToFloatTensor()] + t.batch_tfms)
        x = batch(item(PILImage.create(np.array(PHOTOS[1])))[None])[0]
        assert (x.as_subclass(torch.Tensor) - t(PHOTOS[1])).abs().max() <= 1e-5, n

def test_inputs_agree():
    "PIL, uint8 CHW, uint8 batch, numpy HWC and a list give the same tensors; float input is the same pixels unrounded"
    t = checkpoint_transforms('clip_vit')
    x = t(PHOTOS[0])
    u8 = torch.from_numpy(np.array(PHOTOS[0])).permute(2, 0, 1)
    assert torch.equal(t(u8), x) and torch.equal(t(u8[None])[0], x) and torch.equal(t(np.array(PHOTOS[0])), x)
    assert torch.equal(t(PHOTOS)[0], x)
    p = hf_processor(get_spec('clip_vit').processor)
    ref = p(u8.float(), return_tensors='pt').pixel_values[0] # HF takes float pixels on the 0-255 scale
    assert (t(u8.float() / 255) - ref).abs().max() <= 1e-4

def test_edge_images_match():
    "Greyscale, RGBA and an image smaller than the crop (no resize: zero padding) as HF makes them"
    d = get_spec('dino_v2_vit').processor
    t, p = transforms_from_processor(d), hf_processor(d)
    grey, rgba = PHOTOS[1].convert('L'), PHOTOS[1].convert('RGBA')
    rgba.putalpha(100)
    assert torch.equal(t(grey), p(grey.convert('RGB'), return_tensors='pt').pixel_values[0])
    assert torch.equal(t(rgba), p(rgba, return_tensors='pt').pixel_values[0])
    nd = {**d, 'do_resize': False}
    small = Image.fromarray(np.array(PHOTOS[1])[:101, :150])
    assert torch.equal(transforms_from_processor(nd)(small), hf_processor(nd)(small, return_tensors='pt').pixel_values[0])

def test_resized_keeps_the_crop_ratio():
    assert checkpoint_transforms('deit_vit', size=112).resize == {'height': 128, 'width': 128}
    assert checkpoint_transforms('dino_v2_vit', size=112).resize == {'shortest_edge': 128}
    assert checkpoint_transforms('vanilla_vit', size=384).resize == {'height': 384, 'width': 384}

@pytest.mark.parametrize('src, exc, msg', [
    ('no_such_vit', ValueError, "Unknown checkpoint 'no_such_vit'"),
    ('nobody/no-such-model', ValueError, "Unknown checkpoint 'nobody/no-such-model'"),
    (3, TypeError, 'got int'),
    ({'size': 224}, ValueError, 'names no image_processor_type'),
    ({'image_processor_type': 'ConvNextImageProcessor'}, ValueError, 'steps of its own'),
])
def test_bad_sources(src, exc, msg):
    with pytest.raises(exc, match=msg): checkpoint_transforms(src)

def test_bad_images():
    t = checkpoint_transforms('vanilla_vit')
    for x, exc, msg in [(torch.full((3, 8, 8), 2.), ValueError, r'values in \[0, 1\]'), (torch.zeros(8, 8, 3), ValueError, 'channels-last'),
                        ('missing.png', FileNotFoundError, 'no such image file'), (object(), TypeError, 'got object'),
                        (np.zeros((8, 8, 3)), TypeError, 'uint8')]:
        with pytest.raises(exc, match=msg): t(x)

@pytest.mark.parametrize('name', SEEDS)
def test_saved_processor_is_the_models_recipe(name):
    "A tiny model (32 px) is fed what the preprocessor_config.json of its save makes transformers feed it"
    from vitzoo.factory import tiny_model
    from vitzoo.save import processor_config
    m = tiny_model(name)
    d = processor_config(m)
    t = checkpoint_transforms(m)
    assert t.size == (32, 32)
    diff = (t(PHOTOS[0]) - hf_processor(d)(PHOTOS[0], return_tensors='pt').pixel_values[0]).abs().max()
    assert diff <= 1e-5, (t, d, diff) # DINOv3 resizes in float: equal to float rounding; the others bit for bit

def test_model_sizes():
    "A model built for another square size gets the recipe scaled; a non-square one is refused, not approximated"
    from vitzoo.factory import tiny_model
    assert checkpoint_transforms(tiny_model('clip_vit', config_kwargs=dict(image_size=48))).size == (48, 48)
    with pytest.raises(ValueError, match='built for 32x48 images'):
        checkpoint_transforms(tiny_model('dino_v2_vit', config_kwargs=dict(image_size=(32, 48))))
