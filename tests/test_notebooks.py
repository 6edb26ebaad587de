"Run every notebook's cells as a test, as `nbdev-test` does, but one pytest case per notebook."
import os
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

os.environ.setdefault('HF_HUB_OFFLINE', '1')
cfg = get_config()
nbs = sorted(p for p in cfg.nbs_path.rglob('*.ipynb') if not any(part.startswith(('.', '_')) for part in p.relative_to(cfg.nbs_path).parts))
# Flags named in VITZOO_TEST_FLAGS (e.g. "slow") run too; every other `tst_flags` cell is skipped, as in `nbdev-test`.
force = os.environ.get('VITZOO_TEST_FLAGS', '').split()

@pytest.mark.parametrize('nb', nbs, ids=[str(p.relative_to(cfg.nbs_path)) for p in nbs])
def test_notebook(nb):
    ok, secs = run_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=force, basepath=cfg.config_path)
    assert ok, f'{nb.name} failed (traceback above)'
