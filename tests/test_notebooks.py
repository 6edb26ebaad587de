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

def _vitzoo_classes():
    "Every class defined in vitzoo's modules"
    import vitzoo
    mods = [importlib.import_module(f'vitzoo.{m.name}') for m in pkgutil.iter_modules(vitzoo.__path__) if not m.name.startswith('_')]
    return {c for m in mods for c in vars(m).values() if inspect.isclass(c) and c.__module__.startswith('vitzoo')}

@pytest.fixture
def library_unpatched():
    """A notebook that `@patch`es a class imported from the library (02b_timm patches `vitzoo.model.VitZooModel`) replaces its
    methods for the whole process with the notebook's copies: put the library's own back, so later notebooks test vitzoo/."""
    saved = {c: dict(vars(c)) for c in _vitzoo_classes()}
    yield
    for c, d in saved.items():
        for k in set(vars(c)) - set(d): delattr(c, k)
        for k, v in d.items():
            if vars(c).get(k, object()) is not v: setattr(c, k, v)

@pytest.mark.parametrize('nb', nbs, ids=[str(p.relative_to(cfg.nbs_path)) for p in nbs])
def test_notebook(nb, library_unpatched):
    ok, secs = run_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=force, basepath=cfg.config_path)
    assert ok, f'{nb.name} failed (traceback above)'
