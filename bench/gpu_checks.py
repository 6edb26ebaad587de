"""The checks that need a CUDA GPU, in one short script: the CUDA tests of mixed precision, then a training-step time
comparison of float32, float16 (autocast + loss scaler) and bfloat16 (autocast) on ViT-B/16.

Tests: `tests/test_precision.py -k cuda` (fastai learner: `to_fp16()` with fastai's loss scaler, `to_bf16()`, predictions
in float32, float32 master weights; Lightning's `precision='16-mixed'`), with `-rs` so a skipped test shows why.
Timing: `build_model('vanilla_vit', load_pretrained=False, head=10)` (ViT-B/16, random weights), batch `--bs` at 224 px,
AdamW, one full training step (forward, loss, backward, optimizer step; the scaler for float16) timed with CUDA
synchronisation, variants interleaved round-robin (the order rotates each round) after a warm-up, medians reported with
the median per-round ratio to float32. Peak memory is measured per variant in a separate untimed step.

Usage (from the repository root, on a machine with a CUDA GPU):
    .venv/bin/python bench/gpu_checks.py [--rounds 10] [--bs 64] [--skip-tests]
    .venv/bin/python bench/gpu_checks.py --dry-run   # anywhere: the timing code on the CPU with a tiny model
Exit code: 0 when every test passed and every timing ran, 1 otherwise; 2 when no GPU is present (nothing run)."""
import argparse, os, statistics, subprocess, sys, time, warnings
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore')
import torch
import torch.nn.functional as F

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _timing import round_robin, paired_ratio

def run_tests()->bool:
    "The CUDA tests of tests/test_precision.py; True when they passed (and none was skipped)"
    cmd = [sys.executable, '-m', 'pytest', 'tests/test_precision.py', '-k', 'cuda', '-q', '-rs', '-p', 'no:cacheprovider']
    print('$', ' '.join(cmd[2:]), flush=True)
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    print(r.stdout[-3000:], r.stderr[-2000:], sep='')
    return r.returncode == 0 and ' skipped' not in r.stdout.splitlines()[-1]

def step_fns(bs:int, dev:str='cuda')->dict:
    "One training step of ViT-B/16 per precision: float32, float16 + GradScaler, bfloat16 (`dev='cpu'`: a tiny model, to check the script)"
    from vitzoo.factory import build_model, tiny_model
    size = 224 if dev == 'cuda' else 32
    x = torch.randn(bs, 3, size, size, device=dev)
    y = torch.randint(0, 10, (bs,), device=dev)
    fns = {}
    for name, dtype in (('float32', None), ('float16 + scaler', torch.float16), ('bfloat16', torch.bfloat16)):
        if dev == 'cuda' and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported(including_emulation=False):
            print('bfloat16: not supported natively by this GPU, skipped'); continue
        torch.manual_seed(0)
        model = (build_model('vanilla_vit', load_pretrained=False, head=10) if dev == 'cuda' else tiny_model('vanilla_vit', head=10)).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(dev, enabled=dtype == torch.float16)
        def step(model=model, opt=opt, scaler=scaler, dtype=dtype, name=name):
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if dev == 'cuda': torch.cuda.synchronize()
            if not torch.isfinite(loss): raise RuntimeError(f'{name}: loss {loss.item()}')
            assert next(model.parameters()).dtype == torch.float32
        fns[name] = step
    return fns

def peak_mem(fn)->float:
    "Peak GPU memory (GiB) of one call of `fn`"
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated() / 2**30

def report(times:dict, bs:int, mem:dict):
    "The timing table, in markdown"
    print('| precision | median s/step | img/s | × float32 time | peak GiB |')
    print('|---|---|---|---|---|')
    for n, t in times.items():
        med = statistics.median(t)
        print(f"| {n} | {med:.4f} | {bs/med:.0f} | {paired_ratio(times, n, 'float32'):.3f} | {mem[n]:.2f} |")

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=10)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--skip-tests', action='store_true')
    p.add_argument('--dry-run', action='store_true', help='run the timing code on the CPU with a tiny model: checks the script, measures nothing')
    a = p.parse_args()
    if a.dry_run:
        times = round_robin(step_fns(4, 'cpu'), 2, warmup=1)
        report(times, 4, {n: 0. for n in times})
        print('dry run ok (a tiny model on the CPU: these numbers mean nothing)')
        return
    if not torch.cuda.is_available():
        print('No CUDA GPU here: nothing to check (run this on a GPU machine).')
        sys.exit(2)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    ok = True if a.skip_tests else run_tests()
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 (TF32 off, PyTorch's default for matmuls)
    fns = step_fns(a.bs)
    mem = {n: peak_mem(f) for n, f in fns.items()}
    times = round_robin(fns, a.rounds, warmup=3)
    print(f"\nViT-B/16 training step, batch {a.bs}, 224 px, {a.rounds} rounds\n")
    report(times, a.bs, mem)
    print(f"\ntests: {'passed' if ok else 'FAILED or skipped (see above)'}")
    sys.exit(0 if ok else 1)

if __name__ == '__main__': main()
