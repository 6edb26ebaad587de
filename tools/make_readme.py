"""Write README.md from the executed `nbs/index.ipynb`, the way `nbdev-readme` would without Quarto.

Run `python tools/run_nbs.py index.ipynb` first so the notebook's outputs are current; `tests/test_readme.py` checks
that README.md is what this script makes of the committed notebook, and runs its code as a reader would.
`#| hide` cells (the notebook's assertions) are left out; `#| hub` cells, which need the checkpoints' weights, open with
`HUB_NOTE` so that readers (and the test) know they need the network or a filled HF cache."""
import copy, re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

root = Path(__file__).resolve().parents[1]
_directive = re.compile(r'^\s*#\|')
HUB_NOTE = '# needs the hub: downloads the checkpoint (network, or its weights in the HF cache)'

def _flags(lines)->set: return {l.split('|', 1)[1].strip() for l in lines if _directive.match(l)}

def readme_text(nb_path=root/'nbs'/'index.ipynb')->str:
    "The README markdown for the notebook at `nb_path`"
    nb = copy.deepcopy(nbformat.read(nb_path, as_version=4))
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            lines = c.source.splitlines()
            if 'hide' in _flags(lines): continue
            c.source = '\n'.join(([HUB_NOTE] if 'hub' in _flags(lines) else []) + [l for l in lines if not _directive.match(l)])
            c.outputs = [o for o in c.outputs if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]
        cells.append(c)
    nb.cells = cells
    nb.metadata['language_info'] = dict(name='python')
    body, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(nb)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return "<!-- Made from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n" + body

if __name__ == '__main__':
    (root/'README.md').write_text(readme_text())
    print('wrote', root/'README.md')
