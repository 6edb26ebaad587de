"Run every notebook's cells as a test, as `nbdev-test` does, but one pytest case per notebook."
import importlib, inspect, os, pkgutil
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

os.environ.setdefault('HF_HUB_OFFLINE', '1')
cfg = get_config()
nbs = sorted(p for p in cfg.nbs_path.rglob('*.ipynb') if not any(part.startswith(('.', '_')) for part in p.relative_to(cfg.nbs_path).parts))
# Flags named in VITZOO_TEST_FLAGS (e.g. "slow") run too; every other `tst_flags` cell is skipped, as in `nbdev-test`.
force = os.environ.get('VITZOO_TEST_FLAGS', '').split()

def _vitzoo_modules():
    import vitzoo
    return [importlib.import_module(f'vitzoo.{m.name}') for m in pkgutil.iter_modules(vitzoo.__path__) if not m.name.startswith('_')]

@pytest.fixture
def library_unpatched():
    """A notebook runs in this process and may change the library's global state: `@patch` a class imported from it
    (02b_timm patches `vitzoo.model.VitZooModel`), or register its own copy of a class (04_learner's `FastaiHead` in
    `vitzoo.save._HEADS`). Put the library's own methods and module-level dicts back, so later tests test vitzoo/."""
    mods = _vitzoo_modules()
    classes = {c for m in mods for c in vars(m).values() if inspect.isclass(c) and c.__module__.startswith('vitzoo')}
    saved = {c: dict(vars(c)) for c in classes}
    dicts = {id(d): (d, dict(d)) for m in mods for k, d in vars(m).items() if isinstance(d, dict) and not k.startswith('__')}
    yield
    for c, d in saved.items():
        for k in set(vars(c)) - set(d): delattr(c, k)
        for k, v in d.items():
            if vars(c).get(k, object()) is not v: setattr(c, k, v)
    for d, before in dicts.values(): dict.clear(d); dict.update(d, before) # dict's own methods: registries override theirs

@pytest.mark.parametrize('nb', nbs, ids=[str(p.relative_to(cfg.nbs_path)) for p in nbs])
def test_notebook(nb, library_unpatched):
    ok, secs = run_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=force, basepath=cfg.config_path)
    assert ok, f'{nb.name} failed (traceback above)'
