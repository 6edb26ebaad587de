"""Execute notebooks in place so their outputs (what the docs and README show) are current, then clean them.

Usage: `python tools/run_nbs.py [NOTEBOOK ...]` (default: every notebook). Cells flagged in `tst_flags` are skipped,
as in the tests; pass `--flags slow` to run those too."""
import argparse, os, subprocess, sys
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('nbs', nargs='*')
    p.add_argument('--flags', default='')
    a = p.parse_args()
    cfg = get_config()
    nbs = [cfg.nbs_path/n for n in a.nbs] or sorted(q for q in cfg.nbs_path.rglob('*.ipynb') if not q.name.startswith('_'))
    failed = []
    for nb in nbs:
        ok, secs = run_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=a.flags.split(), basepath=cfg.config_path, save=True)
        print(f"{'ok  ' if ok else 'FAIL'} {nb.relative_to(cfg.nbs_path)} ({secs:.0f}s)")
        if not ok: failed.append(nb)
    for nb in nbs: subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(nb)], check=True) # only the notebooks run here
    sys.exit(1 if failed else 0)
