"README.md is made from nbs/index.ipynb (no hand edits), so it must be exactly what tools/make_readme.py makes of it."
import importlib.util
from pathlib import Path

root = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('make_readme', root/'tools'/'make_readme.py')
make_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_readme)

def test_readme_in_step_with_index():
    assert (root/'README.md').read_text() == make_readme.readme_text(), "README.md is stale: run `python tools/make_readme.py`"

def test_readme_has_test_command():
    assert '```sh\npytest\n```' in (root/'README.md').read_text()
