"""Check the processed docs (`_proc/`, made by `nbdev-proc-nbs`): every public function, class and method of vitzoo has a
`show_doc` entry, and no stored output holds progress-bar frames, local paths or stderr.

Usage: `nbdev-proc-nbs && python tools/check_docs.py` (exit code 1 and a list of what is missing otherwise)."""
import importlib, inspect, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (root/'vitzoo').glob('*.py') if not p.stem.startswith('_')) # every exported module

# Overrides of torch/fastai hooks that the base class documents (fastai does not document them per callback either);
# `VitZooModel.forward` is vitzoo's main API and must be documented.
HOOKS = {'forward', 'extra_repr', 'train', 'create_opt'}

def public_api()->set:
    "`name` of every public function/class in a module's `__all__`, and `Class.method` of their public methods"
    from fastai.callback.core import _events
    names, hooks = set(), HOOKS | set(_events.map(str))
    for m in MODULES:
        mod = importlib.import_module(f'vitzoo.{m}')
        for n in getattr(mod, '__all__', []):
            o = getattr(mod, n)
            if not (inspect.isfunction(o) or inspect.isclass(o)): continue
            if getattr(o, '__name__', n) != n and getattr(o, '__module__', '').startswith('vitzoo'): continue # an alias (`ViTModel`): documented under its own name
            names.add(n)
            if not inspect.isclass(o) or not o.__module__.startswith('vitzoo'): continue
            for k, v in vars(o).items():
                if k.startswith('_') or not (inspect.isfunction(v) or isinstance(v, (classmethod, staticmethod))): continue
                if k in hooks and n != 'VitZooModel': continue
                f = getattr(v, '__func__', v)
                if getattr(f, '__module__', '').startswith('vitzoo'): names.add(f'{n}.{k}')
    return names

def proc_texts():
    "(notebook, source, output text) for every cell of the processed notebooks"
    for p in sorted((root/'_proc').rglob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            outs = []
            for o in c.get('outputs', []):
                if 'text' in o: outs.append(''.join(o['text']))
                for k, v in o.get('data', {}).items():
                    if k.startswith('text/'): outs.append(''.join(v))
            yield p.relative_to(root/'_proc'), ''.join(c['source']), '\n'.join(outs), c

def main():
    if not (root/'_proc').exists(): sys.exit('no _proc/: run nbdev-proc-nbs first')
    documented, problems = set(), []
    bar = re.compile(r'\r|\d+%\|[#█ ]*\||it/s\]')
    local = re.compile(r'(/tmp/|/work/|/home/|/root/|site-packages|\.venv/)')
    for nb, src, out, c in proc_texts():
        documented |= set(re.findall(r'^#{2,4} ([\w.]+)', out, re.M))
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream' and o.get('name') == 'stderr': problems.append(f"{nb}: stderr output in cell {src[:60]!r}")
        if bar.search(out): problems.append(f"{nb}: progress-bar text in the output of {src[:60]!r}")
        if local.search(out): problems.append(f"{nb}: a local path in the output of {src[:60]!r}: {local.search(out).group(0)}")
    missing = sorted(public_api() - documented)
    problems += [f"no show_doc entry for {n}" for n in missing]
    print('\n'.join(problems) if problems else f"docs ok: {len(public_api())} public names documented, outputs clean")
    sys.exit(1 if problems else 0)

if __name__ == '__main__': main()
