"""Cached-token top-k fine-tuning (`vitzoo.top`) vs the same top k blocks trained with the lower blocks frozen but
recomputed every epoch, vs full fine-tuning; then accuracy and time on scikit-learn's digits, linear probe to full.

Part 1, cost: ViT-B/16 (`build_model('vit-base-patch16-224', load_pretrained=False, head=10)`, random weights), CPU,
`--n-train` (96) scikit-learn digits upscaled to 224 px (bilinear, 3 channels, normalised to [-1, 1] once) and
`--n-valid` (32) validation images, held as in-memory tensors in fastai `DataLoaders.from_dsets` (bs 16, train shuffled,
drop_last), so loading a batch costs ~nothing and the comparison is compute. Each variant is a `vit_learner` on its own
model (Adam, constant lr 1e-4, `fit(1)` per round), in float32 and in bfloat16 (`learn.to_bf16()`: autocast):
  full           every parameter trains;
  recompute-kK   `learn.splitter = lambda m: vit_splitter(m, len(m.blocks))`, `learn.freeze_to(len(m.blocks) + 1 - K)`:
                 the stem and blocks 0..n-K-1 are frozen and run forward on every batch (autograd records nothing there),
                 the top K blocks, the final norm and the head train;
  cached-kK      `tl = learn.top_learner(K)` (tokens entering block n-K cached once, bfloat16 storage, the default;
                 bfloat16 autocast for the lower blocks when the learner is bf16), then `tl.fit(1)`: the same parameters
                 train, on the cached tokens.
A callback times the training phase of each epoch (before_train -> after_train) and the whole epoch (with validation
over the valid set: cached tokens for cached-kK, the full model otherwise). Variants run round-robin (the order rotates
each round) after a warm-up of 2 training batches each; times are medians over `--rounds`, ratios are medians of per-round ratios.
The cost model (a block's forward+backward ~ 3x its forward; stem, norm and head ignored) predicts
recompute/cached = (n - K + 3K) / 3K for the training phase: 4.67 for K=1, 2.67 for K=2 of n=12.
Caching cost: the `learn.top_learner(K)` call that builds the cache (it runs `cache_tokens` over train + valid), and one
standalone `cache_tokens` call after the rounds; break-even epochs = caching s / (recompute epoch s - cached epoch s),
whole epochs. Peak memory: each variant builds, caches (cached-kK) and trains 2 batches in a fresh child process, which
reports its RSS after building the model and learner, and its peak RSS (VmHWM; for cached-kK it includes the token
cache and the caching pass). Other processes' CPU use is recorded for each timed epoch.
Part 2, accuracy: `vitzoo.data.digits_folder()` (1,438 train / 359 valid images, 32 px, bs 64) and the digits
tutorial's small ViT (hidden 128, 4 layers, 4 heads, MLP 256, 8 px patches), trained from scratch for `--pre` epochs
(`fit_one_cycle`, lr 3e-3, wd 0.05, no augmentation) as the "pretrained" start; then copies of that start trained
`--ft` epochs each (one-cycle, wd 0.05): `linear_probe` (cached features), `fit_top(1)`, `fit_top(2)`, full
`fit_one_cycle`, and top-2 uncached (`freeze_to`), valid accuracy of the full model end to end. With the tutorial's
augmentation: cached top-2 with views=1 and views=4 against uncached top-2 with on-the-fly augmentation. Per seed the
whole part (start included) is redone; lrs are `--lrs`, or else come from a small sweep on seed 0 (valid accuracy).
Usage: python bench/top.py [--rounds 3] [--n-train 96] [--n-valid 32] [--pre 4] [--ft 4] [--seeds 3]
       [--precisions fp32 bf16] [--mem-precisions fp32 bf16]
       [--skip-cost] [--skip-digits] [--skip-mem] [--skip-aug] [--lrs 1e-2 3e-3 3e-3 3e-3 1e-3] [--quick] [--json bench/top.json]"""
import argparse, copy, json, os, statistics, subprocess, sys, tempfile, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import torch
import torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.callback.core import Callback, CancelFitException
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from vitzoo.factory import build_model
from vitzoo.learner import vit_learner, vit_splitter
from vitzoo.top import cache_tokens
import vitzoo.top # noqa: F401 (patches ViTLearner.top_learner / fit_top)
from _timing import round_robin, paired_ratio, cpu_seconds

QUICK_CFG = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128, image_size=32, patch_size=8)
DIGITS_CFG = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256, image_size=32, patch_size=8)
LR = 1e-4

def med(xs): return statistics.median(xs)

class Other:
    "Cores other processes used on average inside the block, in `.cores`"
    def __enter__(self): self.c0, self.w0 = cpu_seconds(), time.perf_counter(); return self
    def __exit__(self, *a):
        (b0, o0), (b1, o1) = self.c0, cpu_seconds()
        self.wall = time.perf_counter() - self.w0
        self.cores = ((b1 - b0) - (o1 - o0)) / self.wall

class EpochTimer(Callback):
    "Wall time of each epoch's training phase (`train`) and of the whole epoch with validation (`epoch`)"
    order = -50
    def __init__(self): self.train, self.epoch = [], []
    def before_epoch(self): self._e = time.perf_counter()
    def before_train(self): self._t = time.perf_counter()
    def after_train(self): self.train.append(time.perf_counter() - self._t)
    def after_epoch(self): self.epoch.append(time.perf_counter() - self._e)

class StopAfter(Callback):
    "End `fit` after `n` training batches (the memory children)"
    def __init__(self, n): self.n, self.i = n, 0
    def after_batch(self):
        if self.training:
            self.i += 1
            if self.i >= self.n: raise CancelFitException

# ---------------------------------------------------------------- part 1: cost
def digits224(n_train, n_valid, size):
    "scikit-learn digits upscaled to `size` px, 3 channels, normalised to [-1, 1]: in-memory fastai DataLoaders, bs 16"
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images[:n_train + n_valid], dtype=torch.float32)[:, None] / 16
    x = (F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False).expand(-1, 3, -1, -1) - 0.5) / 0.5
    ds = list(zip(x.contiguous(), torch.tensor(d.target[:n_train + n_valid])))
    return DataLoaders.from_dsets(ds[:n_train], ds[n_train:], bs=16, device=torch.device('cpu')) # a str device trips BF16Autocast (see report)

def make_learner(variant, prec, a):
    "`(learner whose fit is timed, its EpochTimer, seconds the caching took)` for `variant` in `prec`"
    set_seed(0)
    kw = dict(config_kwargs=QUICK_CFG) if a.quick else {}
    m = build_model('vit-base-patch16-224', load_pretrained=False, head=10, **kw)
    dls = digits224(a.n_train, a.n_valid, m.config.image_size)
    learn = vit_learner(dls, m, normalize=False, pretrained=False, loss_func=CrossEntropyLossFlat(), metrics=accuracy, lr=LR)
    if prec == 'bf16': learn.to_bf16()
    n, cache_s = len(m.blocks), None
    if variant.startswith('recompute'):
        k = int(variant[-1])
        learn.splitter = lambda mm: vit_splitter(mm, len(mm.blocks))
        learn.freeze_to(n + 1 - k)
    elif variant.startswith('cached'):
        k = int(variant[-1])
        t = time.perf_counter()
        learn = learn.top_learner(k, progress=False)
        cache_s = time.perf_counter() - t
    timer = EpochTimer()
    learn.add_cb(timer)
    return learn, timer, cache_s

def trainable(learn):
    return sum(p.numel() for p in learn.model.parameters() if p.requires_grad) if not hasattr(learn, 'full_model') else \
           sum(p.numel() for p in learn.model.parameters())

def variants(a): return ['full', 'recompute-k1', 'cached-k1', 'recompute-k2', 'cached-k2']

def mem_child(variant, prec, a):
    learn, timer, _ = make_learner(variant if not variant.startswith('cached') else 'full', prec, a)
    rss0 = int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    nbytes = 0
    if variant.startswith('cached'):
        learn = learn.top_learner(int(variant[-1]), progress=False); nbytes = learn.dls.train.dataset.x.nbytes + learn.dls.valid.dataset.x.nbytes
    elif variant.startswith('recompute'):
        learn.splitter = lambda mm: vit_splitter(mm, len(mm.blocks)); learn.freeze_to(len(learn.model.blocks) + 1 - int(variant[-1]))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, LR, cbs=StopAfter(2))
    # VmHWM, not ru_maxrss: a forked child inherits its parent's high-water mark in ru_maxrss, across exec too
    hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')) / 2**20
    print(f"{rss0:.4f} {hwm:.4f} {nbytes / 2**30:.4f}")

def cost(a, out):
    n_blocks = QUICK_CFG['num_hidden_layers'] if a.quick else 12
    res = out.setdefault('cost', {})
    for prec in a.precisions:
        names = variants(a)
        learns, caching = {}, {}
        for v in names:
            learn, timer, cs = make_learner(v, prec, a)
            learns[v] = (learn, timer)
            if cs is not None: caching[v] = cs
        busy = {v: [] for v in names} # cores other processes used during each timed epoch
        def runner(v):
            learn, _ = learns[v]
            def f():
                with Other() as o, learn.no_bar(), learn.no_logging(): learn.fit(1, LR)
                busy[v].append(o.cores)
            return f
        for v in names: # warm-up: 2 training batches each (kernels, allocator, Adam state), not timed
            learn = learns[v][0]
            with learn.no_bar(), learn.no_logging(): learn.fit(1, LR, cbs=StopAfter(2))
        n0 = {v: len(learns[v][1].train) for v in names}
        with Other() as o: round_robin({v: runner(v) for v in names}, a.rounds, warmup=0)
        tr = {v: learns[v][1].train[n0[v]:] for v in names}
        ep = {v: learns[v][1].epoch[n0[v]:] for v in names}
        # the one-time cost again, standalone
        standalone = {}
        for k in (1, 2):
            learn = learns[f'cached-k{k}'][0]
            t = time.perf_counter()
            c = cache_tokens(learn.full_model, learns['full'][0].dls, k, autocast=prec == 'bf16', progress=False)
            standalone[f'k{k}'] = time.perf_counter() - t
            nbytes = c.nbytes; del c
            res.setdefault('cache_nbytes', {})[f'k{k}'] = nbytes
        steps = a.n_train // 16
        r = res[prec] = dict(other_cores=o.cores, wall_s=o.wall, rounds=a.rounds, steps_per_epoch=steps,
                             variants={v: dict(train_s=tr[v], epoch_s=ep[v], median_train_s=med(tr[v]), median_epoch_s=med(ep[v]),
                                               median_step_s=med(tr[v]) / steps, other_cores=busy[v], trainable_params=trainable(learns[v][0]),
                                               train_x_full=paired_ratio(tr, v, 'full'), epoch_x_full=paired_ratio(ep, v, 'full'))
                                       for v in names})
        r['caching_s'] = {f'k{k}': dict(top_learner=caching[f'cached-k{k}'], standalone=standalone[f'k{k}'],
                                        median=med([caching[f'cached-k{k}'], standalone[f'k{k}']])) for k in (1, 2)}
        r['ratios'] = {}
        for k in (1, 2):
            pred = (n_blocks - k + 3 * k) / (3 * k)
            rt, re_ = paired_ratio(tr, f'recompute-k{k}', f'cached-k{k}'), paired_ratio(ep, f'recompute-k{k}', f'cached-k{k}')
            gain = med(ep[f'recompute-k{k}']) - med(ep[f'cached-k{k}'])
            r['ratios'][f'k{k}'] = dict(recompute_over_cached_train=rt, recompute_over_cached_epoch=re_, predicted=pred,
                                        target={1: 4.0, 2: 2.4}[k], met=rt >= {1: 4.0, 2: 2.4}[k],
                                        break_even_epochs=r['caching_s'][f'k{k}']['median'] / gain if gain > 0 else None)
        del learns
        print_cost(prec, r, a)
    if not a.skip_mem:
        mem = res['memory'] = {}
        for prec in a.precisions[:1] if a.quick else a.mem_precisions:
            mem[prec] = {}
            for v in ['full', 'cached-k2'] if a.quick else variants(a):
                cmd = [sys.executable, __file__, '--mem', v, '--precision', prec, '--n-train', str(a.n_train), '--n-valid', str(a.n_valid)]
                if a.quick: cmd.append('--quick')
                got = subprocess.run(cmd, capture_output=True, text=True, check=True)
                r0, pk, cb = map(float, got.stdout.split()[-3:])
                mem[prec][v] = dict(rss_build_gib=r0, peak_gib=pk, cache_gib=cb)
            for v in mem[prec]: mem[prec][v]['peak_x_full'] = mem[prec][v]['peak_gib'] / mem[prec]['full']['peak_gib']
        print_mem(mem)

def print_cost(prec, r, a):
    steps = r['steps_per_epoch']
    print(f"\n{'tiny ViT (--quick)' if a.quick else 'ViT-B/16'}, {prec}, {a.n_train} train / {a.n_valid} valid images, batch 16 ({steps} steps an epoch), {r['rounds']} rounds; "
          f"other processes used {r['other_cores']:.2f} cores on average")
    print("| variant | trainable params | train s/epoch (median) | min | s/step | × full (step) | epoch s incl. valid | × full (epoch) |")
    print("|---|---|---|---|---|---|---|---|")
    for v, d in r['variants'].items():
        print(f"| {v} | {d['trainable_params']:,} | {d['median_train_s']:.2f} | {min(d['train_s']):.2f} | {d['median_step_s']:.3f} | "
              f"{d['train_x_full']:.3f} | {d['median_epoch_s']:.2f} | {d['epoch_x_full']:.3f} |")
    oc = [c for d in r['variants'].values() for c in d['other_cores']]
    print(f"other processes during the timed epochs: {statistics.mean(oc):.2f} cores on average, {max(oc):.2f} at most")
    print("| K | recompute / cached, train (paired median) | cost model | target | epoch incl. valid | caching s (top_learner, standalone) | break-even epochs |")
    print("|---|---|---|---|---|---|---|")
    for k in (1, 2):
        q, c = r['ratios'][f'k{k}'], r['caching_s'][f'k{k}']
        be = f"{q['break_even_epochs']:.2f}" if q['break_even_epochs'] is not None else 'never'
        print(f"| {k} | **{q['recompute_over_cached_train']:.2f}×** ({'met' if q['met'] else 'MISSED'}) | {q['predicted']:.2f}× | ≥ {q['target']}× | "
              f"{q['recompute_over_cached_epoch']:.2f}× | {c['top_learner']:.1f}, {c['standalone']:.1f} | {be} |")

def print_mem(mem):
    print("\nPeak memory, each variant in a fresh process (build, cache if cached, 2 training batches)")
    print("| precision | variant | RSS after build GiB | peak RSS GiB | peak - build GiB | peak / full | cache GiB |")
    print("|---|---|---|---|---|---|---|")
    for prec, d in mem.items():
        for v, x in d.items():
            print(f"| {prec} | {v} | {x['rss_build_gib']:.2f} | {x['peak_gib']:.2f} | {x['peak_gib'] - x['rss_build_gib']:.2f} | "
                  f"{x['peak_x_full']:.2f} | {x['cache_gib']:.3f} |")

# ---------------------------------------------------------------- part 2: digits
def digits(a, out):
    from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms
    from vitzoo.data import digits_folder
    from vitzoo.probe import linear_probe
    path = digits_folder(n_per_class=10 if a.quick else None)
    def dls_for(seed, aug=False):
        set_seed(seed)
        return ImageDataLoaders.from_folder(path, valid='valid', item_tfms=Resize(32), bs=64, num_workers=0,
            batch_tfms=aug_transforms(do_flip=False, max_rotate=10, max_zoom=1.1, max_warp=0.1, p_lighting=0) if aug else None)
    def learner(dls, m): return vit_learner(dls, m, metrics=accuracy, pretrained=False)
    def quiet(learn): return learn.no_bar(), learn.no_logging()
    def fit(learn, fn):
        a_, b_ = quiet(learn)
        with a_, b_:
            t = time.perf_counter(); fn(); return time.perf_counter() - t
    def acc(learn):
        a_, b_ = quiet(learn)
        with a_, b_: return float(learn.validate()[1])
    def run(variant, base, dls, lr, seed, views=1):
        "valid accuracy, training s, caching s"
        m = copy.deepcopy(base)
        set_seed(seed)
        if variant == 'linear probe':
            r = linear_probe(m, dls, epochs=a.ft, lr=lr, seed=seed, progress=False)
            return r.accuracy, r.secs['fit'], r.secs['features']
        learn = learner(dls, m)
        if variant.startswith('top') and 'uncached' not in variant:
            k = int(variant[4])
            t = time.perf_counter(); tl = learn.top_learner(k, views=views, progress=False); cs = time.perf_counter() - t
            s = fit(tl, lambda: tl.fit_one_cycle(a.ft, lr, wd=0.05))
            return acc(learn), s, cs
        if 'uncached' in variant:
            learn.splitter = lambda mm: vit_splitter(mm, len(mm.blocks)); learn.freeze_to(len(m.blocks) + 1 - 2)
        s = fit(learn, lambda: learn.fit_one_cycle(a.ft, lr, wd=0.05))
        return acc(learn), s, 0.0
    main = ['linear probe', 'top-1', 'top-2', 'top-2 uncached', 'full']
    res = out['digits'] = dict(pre_epochs=a.pre, ft_epochs=a.ft, seeds=list(range(a.seeds)), runs=[])
    lrs = dict(zip(main, a.lrs)) if a.lrs else None
    t_all = time.perf_counter()
    for seed in range(a.seeds):
        with Other() as o:
            dls = dls_for(seed)
            set_seed(seed)
            model = build_model('vanilla_vit', load_pretrained=False, head=10, config_kwargs=DIGITS_CFG)
            learn = learner(dls, model)
            pre_s = fit(learn, lambda: learn.fit_one_cycle(a.pre, 3e-3, wd=0.05))
            base = copy.deepcopy(model)
            row = dict(seed=seed, start=dict(acc=acc(learn), train_s=pre_s, lr=3e-3))
            if lrs is None: # sweep on the first seed
                grid = [1e-3, 3e-3, 1e-2] if not a.quick else [3e-3]
                sweep = {v: {lr: run(v, base, dls, lr, seed)[0] for lr in (grid if v != 'linear probe' else [3e-3, 1e-2, 3e-2] if not a.quick else [1e-2])}
                         for v in ['linear probe', 'top-1', 'top-2', 'full']}
                lrs = {v: max(d, key=d.get) for v, d in sweep.items()}; lrs['top-2 uncached'] = lrs['top-2']
                res['sweep'] = {v: {str(k): x for k, x in d.items()} for v, d in sweep.items()}
                print(f"lr sweep (seed 0, valid accuracy): {res['sweep']}", flush=True)
            for v in main:
                acc_, s, cs = run(v, base, dls, lrs[v], seed)
                row[v] = dict(acc=acc_, train_s=s, cache_s=cs, lr=lrs[v])
            if not a.skip_aug:
                adls = dls_for(seed, aug=True)
                for v, views in [('top-2 aug views=1', 1), ('top-2 aug views=4', 4), ('top-2 uncached aug', 1)]:
                    acc_, s, cs = run('top-2 uncached' if 'uncached' in v else 'top-2', base, adls, lrs['top-2'], seed, views)
                    row[v] = dict(acc=acc_, train_s=s, cache_s=cs, lr=lrs['top-2'], views=views)
        row['other_cores'] = o.cores
        res['runs'].append(row)
        print(f"seed {seed} ({o.wall:.0f} s, other processes {o.cores:.2f} cores): " +
              ', '.join(f"{k} {d['acc']:.3f}" for k, d in row.items() if isinstance(d, dict)), flush=True)
    res['lrs'] = lrs; res['wall_s'] = time.perf_counter() - t_all
    names = [k for k, d in res['runs'][0].items() if isinstance(d, dict)]
    res['summary'] = {}
    print(f"\ndigits, {a.pre} epochs from scratch then {a.ft} epochs each, {a.seeds} seed(s) (mean [min, max])")
    print("| model | lr | valid accuracy | train s | caching s | total s |")
    print("|---|---|---|---|---|---|")
    for k in names:
        xs = [r[k] for r in res['runs']]
        s = res['summary'][k] = {f: dict(mean=statistics.mean(x[f] for x in xs), min=min(x[f] for x in xs), max=max(x[f] for x in xs))
                                 for f in ('acc', 'train_s', 'cache_s') if f in xs[0]}
        s['total_s'] = statistics.mean(x['train_s'] + x.get('cache_s', 0) for x in xs)
        s['lr'] = xs[0]['lr']
        print(f"| {k} | {s['lr']:g} | {s['acc']['mean']:.3f} [{s['acc']['min']:.3f}, {s['acc']['max']:.3f}] | {s['train_s']['mean']:.1f} | "
              f"{s.get('cache_s', {}).get('mean', 0):.1f} | {s['total_s']:.1f} |")

def machine():
    return dict(torch=torch.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(), load_average=os.getloadavg()[0],
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--rounds', type=int, default=3); p.add_argument('--n-train', type=int, default=96); p.add_argument('--n-valid', type=int, default=32)
    p.add_argument('--pre', type=int, default=4); p.add_argument('--ft', type=int, default=4); p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--lrs', type=float, nargs=5, help='lrs of linear probe, top-1, top-2, top-2 uncached, full (no sweep)')
    p.add_argument('--precisions', nargs='+', default=['fp32', 'bf16']); p.add_argument('--mem-precisions', nargs='+', default=['fp32', 'bf16'])
    p.add_argument('--skip-cost', action='store_true'); p.add_argument('--skip-digits', action='store_true')
    p.add_argument('--skip-mem', action='store_true'); p.add_argument('--skip-aug', action='store_true')
    p.add_argument('--quick', action='store_true', help='smoke run (< 1 min): a tiny ViT at 32 px for the cost part, 10 digits a class, memory of 2 variants')
    p.add_argument('--json', default=None, help='where the numbers go (default bench/top.json; a temp file with --quick)')
    p.add_argument('--mem'); p.add_argument('--precision', default='fp32')
    a = p.parse_args()
    if a.mem: mem_child(a.mem, a.precision, a); sys.exit()
    if a.quick:
        a.rounds, a.n_train, a.n_valid, a.pre, a.ft, a.seeds = 1, 32, 16, 1, 1, 1
        a.lrs = a.lrs or [1e-2, 3e-3, 3e-3, 3e-3, 1e-3]
    a.json = a.json or (os.path.join(tempfile.gettempdir(), 'top_quick.json') if a.quick else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'top.json'))
    out = dict(machine=machine(), args=vars(a), command=' '.join(sys.argv))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    if not a.skip_cost: cost(a, out)
    if not a.skip_digits: digits(a, out)
    out['machine']['load_average_end'] = os.getloadavg()[0]; out['wall_s'] = time.perf_counter() - t0
    if (a.skip_cost or a.skip_digits) and os.path.exists(a.json): # a run of one part keeps the other part's numbers
        with open(a.json) as f: old = json.load(f)
        part = 'digits' if a.skip_cost else 'cost'
        key = part if part == 'digits' else f"cost {'+'.join(a.precisions)}"
        old.setdefault('runs', {})[key] = {k: out[k] for k in ('machine', 'args', 'command', 'wall_s')}
        if part == 'cost': old['cost'].update(out['cost']) # per precision, and memory
        else: old[part] = out[part]
        out = old
    else: out['runs'] = {(p if p == 'digits' else f"cost {'+'.join(a.precisions)}"): {k: out[k] for k in ('machine', 'args', 'command', 'wall_s')}
                         for p in ('cost', 'digits') if p in out}
    with open(a.json, 'w') as f: json.dump(out, f, indent=1)
    print(f"\nwrote {a.json}; {time.perf_counter() - t0:.0f} s in all; load average at the end {os.getloadavg()[0]:.1f}")
