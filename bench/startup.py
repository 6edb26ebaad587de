"""Import and build times: `import vitzoo.factory` vs `import transformers`, and model build times vs transformers' own.

Run from the repository root:  .venv/bin/python bench/startup.py [--rounds 7]
Each import is timed in a fresh interpreter (wall time of `python -c "import X"` minus `python -c "pass"`), interleaved."""
import argparse, os, statistics, subprocess, sys, tempfile, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')

def _run(code):
    t = time.perf_counter(); subprocess.run([sys.executable, '-c', code], check=True, env=os.environ); return time.perf_counter() - t

def imports(rounds):
    codes = dict(python='pass', transformers='import transformers', vitzoo_factory='import vitzoo.factory',
                 vitzoo_factory_no_fastai="import vitzoo.factory, sys; assert 'fastai' not in sys.modules and 'torch' not in sys.modules")
    times = {k: [] for k in codes}
    for r in range(rounds):
        for k in codes: times[k].append(_run(codes[k]))
    base = statistics.median(times['python'])
    med = {k: statistics.median(v) - base for k, v in times.items()}
    print(f"\n| import | median s (minus bare python {base:.3f}s) |\n|---|---|")
    for k in ('transformers', 'vitzoo_factory'): print(f"| `{k.replace('_', '.')}` | {med[k]:.3f} |")
    print(f"\n`import vitzoo.factory` / `import transformers` = {med['vitzoo_factory']/med['transformers']:.2f}× "
          "(it imports neither torch nor fastai: checked)")

def builds(rounds):
    import torch, transformers
    from vitzoo.factory import build_model
    from vitzoo.registry import get_spec
    cfg = {k: v for k, v in get_spec('vanilla_vit').config.items() if k != 'model_type'}
    folder = tempfile.mkdtemp()
    transformers.ViTModel(transformers.ViTConfig(**cfg), add_pooling_layer=False).save_pretrained(folder)
    transformers.utils.logging.set_verbosity_error(); transformers.utils.logging.disable_progress_bar()
    cases = dict(
        vitzoo_random=lambda: build_model('vanilla_vit', load_pretrained=False),
        hf_random=lambda: transformers.ViTModel(transformers.ViTConfig(**cfg), add_pooling_layer=False),
        vitzoo_local=lambda: build_model('vanilla_vit', model_name=folder),
        hf_local=lambda: transformers.ViTModel.from_pretrained(folder, add_pooling_layer=False))
    for f in cases.values(): f()
    times = {k: [] for k in cases}
    for r in range(rounds):
        for k, f in cases.items():
            t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("\n| build ViT-B/16 | vitzoo s | transformers s | ratio |\n|---|---|---|---|")
    for what, a, b in (('random init (`load_pretrained=False`)', 'vitzoo_random', 'hf_random'), ('local safetensors folder', 'vitzoo_local', 'hf_local')):
        print(f"| {what} | {med[a]:.3f} | {med[b]:.3f} | {med[a]/med[b]:.2f}× |")

if __name__ == '__main__':
    p = argparse.ArgumentParser(); p.add_argument('--rounds', type=int, default=7); a = p.parse_args()
    imports(a.rounds); builds(a.rounds)
