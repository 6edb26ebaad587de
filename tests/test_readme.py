"""README.md is made from nbs/index.ipynb (no hand edits), so it must be exactly what tools/make_readme.py makes of it;
and it must work as written: its Python code runs, in order, in a fresh interpreter after the install command, and so
do its `vitzoo` commands."""
import importlib.util, os, re, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('make_readme', root/'tools'/'make_readme.py')
make_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_readme)
readme = (root/'README.md').read_text()
env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'MPLBACKEND': 'Agg'}

def code_blocks(lang:str)->list:
    "The README's fenced code blocks in `lang`, in order"
    return re.findall(rf'^```{lang}\n(.*?)^```', readme, re.S | re.M)

def test_readme_in_step_with_index():
    assert readme == make_readme.readme_text(), "README.md is stale: run `python tools/make_readme.py`"

def test_readme_has_test_command():
    assert '```sh\npytest\n```' in readme

def test_readme_python_runs(tmp_path):
    "Every Python block but those that need hub weights (marked with `HUB_NOTE`), run in order as one script, offline"
    blocks = code_blocks('python')
    hub = [b for b in blocks if b.startswith(make_readme.HUB_NOTE)]
    runnable = [b for b in blocks if not b.startswith(make_readme.HUB_NOTE)]
    assert len(hub) == 3 and len(runnable) >= 10, (len(hub), len(runnable))
    code = '\n'.join(runnable)
    # the reader sees no helper they never imported: vitzoo's own test helpers stay in hidden cells
    assert not re.search(r'\b(test_\w+|expect_fail)\(|fastcore\.test', code), re.search(r'\b(test_\w+|expect_fail)\(|fastcore\.test', code)
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

def test_readme_commands_run(tmp_path):
    "The `vitzoo` commands of the README, as the installed script: the registry, and a one-epoch `vitzoo finetune`"
    cmds = [l.split('#')[0].split() for b in code_blocks('sh') for l in b.splitlines() if l.startswith('vitzoo ')]
    assert ['vitzoo', 'finetune'] in cmds, cmds
    assert '`vitzoo models`' in readme
    exe = str(Path(sys.executable).parent/'vitzoo') # the console script `pip install -e ".[dev]"` installs
    r = subprocess.run([exe, 'models'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:2] == ['name', 'checkpoint'] and 'dino_v2_vit' in r.stdout, r.stderr
    r = subprocess.run([exe, 'finetune', '--epochs', '1'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'validation accuracy' in r.stdout and 'in vitzoo_out' in r.stdout, r.stdout[-500:]
    for f in ('model/vitzoo.json', 'model/model.safetensors', 'metrics.json', 'losses.png', 'confusion_matrix.png'):
        assert (tmp_path/'vitzoo_out'/f).exists(), f # where the README says the report goes
