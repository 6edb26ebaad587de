"""Cached linear probe vs fastai `Learner.fit` with a frozen backbone, on scikit-learn's digits.

Both train a linear classifier for the same number of epochs, at the same peak learning rate, on the same model (same
backbone weights) and the same fastai DataLoaders (the image folder of `vitzoo.data.digits_folder`: 1,438 train / 359
valid images, 32 px, read as 3-channel images, bs 64). `linear_probe` runs the backbone once over train and valid and
trains on the cached features; fastai runs the frozen backbone on every batch of every epoch (and over the validation set
after each epoch, as `fit` does).

The backbone is a small ViT (hidden 192, 6 layers, 3 heads, MLP 768, 32 px, 4 px patches, 'cls+mean' pooling) with
random weights: one epoch of end-to-end training from scratch did not learn the digits (10-13% valid accuracy, 2+ min
an epoch here), so the features are random ones. Their per-image spread is small next to their common component, so a
linear head on the raw features trains slowly. Both sides therefore standardise the features, the way linear probes
usually do: `linear_probe(normalize=True)` (folded into the head afterwards) and, for fastai, the MAE linear-probing head
`BatchNorm1d(affine=False)` + `Linear` (a `BaseHead` below). `--plain` adds a fastai run with a plain `LinearHead` at
fastai's default lr, to show why.

Usage: python bench/probe.py [--epochs 10] [--rounds 2] [--plain]"""
import argparse, copy, os, statistics, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore')
import torch
from torch import nn
from fastai.vision.all import ImageDataLoaders, Resize, Normalize, Learner, CrossEntropyLossFlat, accuracy
from vitzoo.factory import build_model
from vitzoo.heads import BaseHead, LinearHead
from vitzoo.data import digits_folder
from vitzoo.probe import linear_probe
from _timing import cpu_seconds

CFG = dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768, image_size=32, patch_size=4)

class BNLinearHead(BaseHead):
    "MAE's linear-probe head: BatchNorm without affine parameters, then a linear layer (linear at inference)"
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self._input_dim,self._output_dim = input_dim,output_dim
        self.bn, self.fc = nn.BatchNorm1d(input_dim, affine=False, eps=1e-6), nn.Linear(input_dim, output_dim)
    @property
    def input_dim(self): return self._input_dim
    def forward(self, x): return self.fc(self.bn(x))

class Other:
    "Share of the CPUs other processes used inside the block, in `.share`"
    def __enter__(self): self.c0, self.w0 = cpu_seconds(), time.perf_counter(); return self
    def __exit__(self, *a):
        (b0, o0), (b1, o1) = self.c0, cpu_seconds()
        self.share = ((b1 - b0) - (o1 - o0)) / ((time.perf_counter() - self.w0) * os.cpu_count())

def run_fastai(base, dls, epochs, lr, seed, head_cls=BNLinearHead):
    torch.manual_seed(seed)
    m = copy.deepcopy(base)
    m.head = head_cls(m.pooled_dim, 10)
    learn = Learner(dls, m.freeze_backbone(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs, lr)
    return time.perf_counter() - t, float(learn.recorder.values[-1][2])

def run_probe(base, dls, epochs, lr, seed):
    m = copy.deepcopy(base)
    t = time.perf_counter()
    r = linear_probe(m, dls, epochs=epochs, lr=lr, seed=seed, progress=False)
    return time.perf_counter() - t, r.accuracy, r.secs

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--rounds', type=int, default=2, help='fastai runs; the probe runs before each and after the last')
    p.add_argument('--lr', type=float, default=1e-2, help="peak lr of both (linear_probe's default)")
    p.add_argument('--plain', action='store_true', help="also fastai with a plain LinearHead at fastai's default lr 1e-3")
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    torch.manual_seed(a.seed)
    base = build_model('vanilla_vit', load_pretrained=False, pooling='cls+mean', config_kwargs=CFG).eval()
    dls = ImageDataLoaders.from_folder(digits_folder(seed=a.seed), valid='valid', item_tfms=Resize(32), bs=64, num_workers=0,
                                       batch_tfms=Normalize.from_stats(base.spec.mean, base.spec.std))
    print(f"digits: {len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, 32 px; "
          f"backbone {sum(p.numel() for p in base.backbone.parameters())/1e6:.1f}M parameters, random weights")
    probes, fastais = [], []
    for i in range(a.rounds):
        with Other() as o1: probes.append(run_probe(base, dls, a.epochs, a.lr, a.seed + i))
        with Other() as o2: fastais.append(run_fastai(base, dls, a.epochs, a.lr, a.seed + i))
        print(f"round {i}: probe {probes[-1][0]:.1f}s acc {probes[-1][1]:.4f} (other processes {o1.share:.0%} of the CPUs) | "
              f"fastai {fastais[-1][0]:.1f}s acc {fastais[-1][1]:.4f} (other processes {o2.share:.0%})", flush=True)
    with Other() as o: probes.append(run_probe(base, dls, a.epochs, a.lr, a.seed + a.rounds))
    print(f"last probe: {probes[-1][0]:.1f}s acc {probes[-1][1]:.4f} (other processes {o.share:.0%})")
    plain = run_fastai(base, dls, a.epochs, 1e-3, a.seed, LinearHead) if a.plain else None
    tp, tf = statistics.median(s for s, *_ in probes), statistics.median(s for s, _ in fastais)
    ap, af = statistics.mean(acc for _, acc, _ in probes), statistics.mean(acc for _, acc in fastais)
    print(f"\n{a.epochs} epochs of a linear classifier on the frozen backbone   time (median)   valid accuracy (mean, runs)")
    print(f"  fastai Learner.fit, BN+Linear head, lr {a.lr:g}      {tf:8.1f}s       {af:.4f}  {[round(x, 4) for _, x in fastais]}")
    print(f"  vitzoo linear_probe, lr {a.lr:g}                     {tp:8.1f}s       {ap:.4f}  {[round(x, 4) for _, x, _ in probes]}")
    if plain: print(f"  fastai Learner.fit, LinearHead, lr 0.001           {plain[0]:8.1f}s       {plain[1]:.4f}")
    print(f"  speed-up {tf/tp:.1f}x; accuracy difference {100*(ap-af):+.1f} points; probe = features "
          f"{statistics.median(s['features'] for *_, s in probes):.1f}s + head {statistics.median(s['fit'] for *_, s in probes):.2f}s")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
