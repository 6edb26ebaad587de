"""Run vit_zoo's own tests and README examples against vitzoo, offline, with only the package renamed.

Usage: `python tools/seed_compat.py PATH_TO_VIT_ZOO_CHECKOUT [--keep] [--cache DIR] [-k EXPR]`

vitzoo keeps the API of vit_zoo (github.com/jbindaAI/vit_zoo, GPL-3.0; reference commit 2a8a771). This script copies
the checkout's `tests/` and the python examples of its README into a temporary folder, replaces `vit_zoo` by `vitzoo`
in them (nothing else), and runs them with pytest against this repository's vitzoo, offline. vit_zoo's code and tests
are read from the checkout at run time and never stored in vitzoo.

Many of those tests "download" checkpoints (`build_model("vanilla_vit", head=2)` loads weights). To run them offline the
script writes a throwaway HF hub cache (HF_HUB_CACHE in the temporary folder, HF_HUB_OFFLINE=1) holding **FAKE,
randomly initialised checkpoints** in the real architectures (the class and config each hub repo was saved with) for
the hub ids the tests and README use. The weights are random: these runs test the API and the loading path, not
accuracy. The README examples use an undefined `images`: they get `images = torch.rand(2, 3, 224, 224)`. A README block
that is a signature listing (not valid Python) or imports a placeholder/uninstalled module is skipped, and said so.

Prints pass/fail/skip counts and each failure's first line, marks the failures known to be by design (`EXPECTED`), and
exits 1 when a failure outside `EXPECTED` occurs (or nothing ran), else 0.
"""
import argparse, gc, hashlib, json, os, re, shutil, subprocess, sys, tempfile, textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_VIT_B = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
_VIT_L = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
_VIT_S = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536)
_VIT = dict(image_size=224, patch_size=16, qkv_bias=True, layer_norm_eps=1e-12, hidden_act='gelu')
_DINOV2_B = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4, image_size=518, patch_size=14,
                 layerscale_value=1.0, use_swiglu_ffn=False, layer_norm_eps=1e-6, hidden_act='gelu', qkv_bias=True)
# hub id -> (class the hub repo was saved with, its config): the architectures of the real checkpoints (their config.json)
FAKE_CHECKPOINTS = {
    'google/vit-base-patch16-224': ('ViTForImageClassification', dict(model_type='vit', **_VIT_B, **_VIT, num_labels=1000)),
    'google/vit-large-patch16-224': ('ViTForImageClassification', dict(model_type='vit', **_VIT_L, **_VIT, num_labels=1000)),
    'facebook/deit-base-distilled-patch16-224': ('DeiTForImageClassificationWithTeacher',
                                                 dict(model_type='deit', **_VIT_B, **_VIT, num_labels=1000)),
    'facebook/deit-small-distilled-patch16-224': ('DeiTForImageClassificationWithTeacher',
                                                  dict(model_type='deit', **_VIT_S, **_VIT, num_labels=1000)),
    'facebook/dino-vitb16': ('ViTModel', dict(model_type='vit', **_VIT_B, **_VIT)),
    'facebook/dinov2-base': ('Dinov2Model', dict(model_type='dinov2', **_DINOV2_B)),
    'facebook/dinov2-with-registers-base': ('Dinov2WithRegistersModel',
                                            dict(model_type='dinov2_with_registers', num_register_tokens=4, **_DINOV2_B)),
    'openai/clip-vit-base-patch16': ('CLIPModel', dict(model_type='clip', projection_dim=512,
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16,
                           image_size=224, hidden_act='quick_gelu', layer_norm_eps=1e-5, projection_dim=512),
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, vocab_size=49408, hidden_act='quick_gelu', projection_dim=512))),
}

# failures that are vitzoo's design, not missing compatibility: test id (file::Class::test) -> why
EXPECTED = {
    'test_model.py::TestViTModel::test_vit_model_initialization_with_head':
        "asserts model.backbone == ViTBackbone(...): vitzoo keeps the transformers model as model.backbone (it is wrapper.backbone)",
    'test_model.py::TestViTModel::test_vit_model_initialization_without_head':
        "asserts model.backbone == ViTBackbone(...): vitzoo keeps the transformers model as model.backbone (it is wrapper.backbone)",
    'test_factory/test_registry.py::TestModelRegistry::test_registry_dinov3_vit':
        "wants transformers.ViTModel for DINOv3, a vit_zoo bug: DINOv3 checkpoints are DINOv3ViTModel (RoPE, registers)",
    'test_factory/test_builder.py::test_build_model_direct_usage_missing_args':
        "build_model(model_name=<hub id>) without backbone_cls now reads the class from the checkpoint's config (issue 11 part 3) "
        "where vit_zoo raised",
}

_README_PRELUDE = "import torch\nimages = torch.rand(2, 3, 224, 224) # the README leaves `images` undefined\n"

def _rename(text:str)->str: return text.replace('vit_zoo', 'vitzoo')

def readme_blocks(readme:Path)->list:
    "The ```python blocks of `readme`, renamed"
    return [_rename(b) for b in re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)]

_README_TEST = '''
import json, sys, pytest
from pathlib import Path
BLOCKS = json.loads((Path(__file__).parent/'readme_blocks.json').read_text())
PRELUDE = {prelude!r}

@pytest.mark.parametrize('i', range(len(BLOCKS)), ids=[f'block{{i}}' for i in range(len(BLOCKS))])
def test_readme_block(i):
    src = BLOCKS[i]
    try: code = compile(src, f'README block {{i}}', 'exec')
    except SyntaxError: pytest.skip('not Python: a signature listing')
    ns = {{'__name__': f'readme_block_{{i}}'}}
    exec(PRELUDE, ns)
    try: exec(code, ns)
    except ImportError as e:
        if (e.name or '').split('.')[0] == 'vitzoo': raise
        pytest.skip(f'imports a placeholder or uninstalled name: {{e}}')
'''

def write_fake_cache(cache:Path, ids:list):
    "Write FAKE random-weight checkpoints for hub `ids` into HF hub cache `cache` (models--org--name/snapshots/<hash>/, refs/main)"
    import torch, transformers
    transformers.utils.logging.disable_progress_bar()
    for hub_id in ids:
        cls_name, cfg = FAKE_CHECKPOINTS[hub_id]
        repo = cache/f"models--{hub_id.replace('/', '--')}"
        rev = hashlib.sha1(f'vitzoo-fake-random-weights:{hub_id}'.encode()).hexdigest()
        snap = repo/'snapshots'/rev
        if (snap/'model.safetensors').is_file(): continue
        cfg = dict(cfg)
        config = transformers.AutoConfig.for_model(cfg.pop('model_type'), **cfg)
        cls = getattr(transformers, cls_name)
        config.architectures = [cls_name]
        torch.manual_seed(0)
        model = cls(config)
        model.save_pretrained(snap, safe_serialization=True)
        (snap/'README.md').write_text(f"FAKE checkpoint: random weights in the architecture of {hub_id}, written by vitzoo's "
                                      "tools/seed_compat.py for offline API tests. Not the real model.\n")
        (repo/'refs').mkdir(parents=True, exist_ok=True)
        (repo/'refs'/'main').write_text(rev)
        n = sum(p.numel() for p in model.parameters())
        print(f"  fake {hub_id}: {cls_name}, {n/1e6:.1f}M random parameters", flush=True)
        del model
        gc.collect()

def _results(xml:Path):
    "(test id, outcome, first line of the message) for every test case in junit file `xml`"
    out = []
    for tc in ET.parse(xml).getroot().iter('testcase'):
        cls, name = tc.get('classname', ''), tc.get('name', '')
        parts = cls.split('.')
        i = next((j for j, p in enumerate(parts) if p.startswith('test_') or p == 'readme'), 0)
        mod = [p for p in parts[i:] if not p[:1].isupper()]
        klass = [p for p in parts[i:] if p[:1].isupper()]
        tid = '/'.join(mod) + '.py::' + '::'.join(klass + [name])
        tid = tid.replace('tests/', '', 1)
        kid = next((k for k in ('failure', 'error', 'skipped') if tc.find(k) is not None), None)
        if kid is None: out.append((tid, 'passed', '')); continue
        el = tc.find(kid)
        msg = (el.get('message') or el.text or '').strip().splitlines()
        out.append((tid, 'skipped' if kid == 'skipped' else 'failed', msg[0] if msg else ''))
    return out

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('seed', type=Path, help='a vit_zoo checkout (holding tests/ and README.md)')
    p.add_argument('--keep', action='store_true', help='keep the temporary folder (tests, fake cache, junit files)')
    p.add_argument('--cache', type=Path, help='folder for the fake HF cache, reused across runs (default: inside the temporary folder)')
    p.add_argument('-k', default=None, help='pytest -k expression, to run some tests only')
    p.add_argument('--no-fake-weights', action='store_true', help='write no fake checkpoints (an empty HF cache): the tests that '
                   'load weights then fail as downloads would offline, and are counted apart')
    a = p.parse_args(argv)
    seed = a.seed.resolve()
    if not (seed/'tests').is_dir(): sys.exit(f"{seed} has no tests/ folder: pass a vit_zoo checkout")
    tmp = Path(tempfile.mkdtemp(prefix='vitzoo-seed-compat-'))
    try:
        tests = tmp/'tests'
        shutil.copytree(seed/'tests', tests, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        for f in tests.rglob('*.py'): f.write_text(_rename(f.read_text()))
        texts = [f.read_text() for f in tests.rglob('*.py')]
        if (seed/'README.md').is_file():
            blocks = readme_blocks(seed/'README.md')
            rd = tmp/'readme'
            rd.mkdir()
            (rd/'readme_blocks.json').write_text(json.dumps(blocks))
            (rd/'test_readme.py').write_text(textwrap.dedent(_README_TEST.format(prelude=_README_PRELUDE)))
            texts += blocks
        (tmp/'pytest.ini').write_text('[pytest]\n')
        used = sorted(i for i in FAKE_CHECKPOINTS if any(i in t for t in texts))
        if a.no_fake_weights:
            cache = tmp/'empty-hf-cache'
            cache.mkdir()
            print("No fake checkpoints (--no-fake-weights): an empty HF cache, offline", flush=True)
        else:
            cache = (a.cache or tmp/'FAKE-RANDOM-WEIGHTS-hf-cache').resolve()
            print(f"Writing FAKE random-weight checkpoints into {cache} (an HF hub cache used only by this run):", flush=True)
            write_fake_cache(cache, used)
        env = {**os.environ, 'HF_HUB_CACHE': str(cache), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1',
               'PYTHONPATH': os.pathsep.join([str(REPO)] + [q for q in [os.environ.get('PYTHONPATH')] if q]),
               'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
        env.pop('HF_HOME', None)
        files = sorted(tests.rglob('test_*.py')) + sorted((tmp/'readme').glob('test_*.py'))
        results = []
        for f in files: # one process per file bounds the memory the random models take
            xml = tmp/f"junit-{f.stem}.xml"
            cmd = [sys.executable, '-m', 'pytest', str(f), '-q', '-p', 'no:cacheprovider', f'--junitxml={xml}',
                   '--rootdir', str(tmp), '-W', 'ignore::DeprecationWarning'] + (['-k', a.k] if a.k else [])
            print(f"running {f.relative_to(tmp)} ...", flush=True)
            subprocess.run(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if xml.exists(): results += _results(xml)
            else: results.append((str(f.relative_to(tmp)), 'failed', 'pytest wrote no report (crashed?)'))
        seed_res = [r for r in results if not r[0].startswith('readme')]
        readme_res = [r for r in results if r[0].startswith('readme')]
        unexpected = []
        for title, res in (('vit_zoo tests', seed_res), ('README examples', readme_res)):
            n = {k: sum(r[1] == k for r in res) for k in ('passed', 'failed', 'skipped')}
            print(f"\n{title}: {n['passed']} of {len(res)} passed, {n['failed']} failed, {n['skipped']} skipped")
            for tid, outcome, msg in res:
                if outcome == 'passed': continue
                why = EXPECTED.get(tid)
                if not why and a.no_fake_weights and 'CheckpointNotFoundError' in msg: why = 'loads hub weights, absent offline'
                if outcome == 'failed' and not why: unexpected.append(tid)
                tag = 'SKIP' if outcome == 'skipped' else 'FAIL (expected: ' + why + ')' if why else 'FAIL'
                print(f"  {tag}: {tid}\n      {msg[:300]}")
        if unexpected: print(f"\n{len(unexpected)} unexpected failure(s)")
        if a.keep: print(f"\nkept {tmp}")
        return 1 if unexpected or not results else 0
    finally:
        if not a.keep: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': sys.exit(main())
