"""bfloat16 feature extraction on CPU: throughput and agreement with fp32, ViT-B/16 at 224 px.

Times `vitzoo.probe.extract_embeddings` (the library path, `progress=False`) on 32 real photo crops per call, in batches
of 8, 16 and 32, in fp32 and in the three bf16 modes: `'fast'` (a `vitzoo.fast.fast_inference` copy made at each call: packed oneDNN
linears, fused bias and GELU, lean attention; what `bf16=True` picks on such a CPU), `'cast'` (bfloat16 copies of the
weights, as `model.to(torch.bfloat16)`) and `'autocast'` (`torch.autocast('cpu', dtype=torch.bfloat16)`). Every variant is warmed up, then the variants are
interleaved round by round (the order rotating); throughputs are medians over rounds and speed-ups medians of the
per-round ratios, so a machine that other jobs slow down for a while slows all variants of a round alike. Other jobs
on a 2-core machine do not slow fp32 and bf16 alike, though (threads wait for each other, more often in the shorter bf16
kernels), so each round also records how much CPU other processes used (/proc/stat minus this process) and the results
are given over the quiet rounds, and over all rounds in brackets. Random weights (`load_pretrained=False`: no network): their CLS embeddings share a large common
component, so besides the plain cosine similarity the agreement is also given after removing the fp32 batch mean
("centred"), which compares only what differs between images.

Usage: python bench/embed.py [--rounds 5] [--n 32] [--bs 8 16 32]"""
import argparse, copy, os, statistics, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore')
import numpy as np, torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_sample_images
from vitzoo.factory import build_model
from vitzoo.probe import extract_embeddings, preprocess
from _timing import cpu_seconds

def photo_crops(spec, n, seed=0):
    "`n` random 256-px crops of scikit-learn's two sample photos, preprocessed for `spec`"
    rng, photos = np.random.default_rng(seed), load_sample_images().images
    out = []
    for i in range(n):
        ph = photos[i % 2]
        y, x = rng.integers(0, ph.shape[0] - 256), rng.integers(0, ph.shape[1] - 256)
        out.append(preprocess(Image.fromarray(ph[y:y+256, x:x+256]), spec))
    return torch.stack(out)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--n', type=int, default=32, help='images per timed call')
    p.add_argument('--bs', type=int, nargs='+', default=[8, 16, 32])
    p.add_argument('--quiet', type=float, default=0.1, help="a round is quiet when other processes use less than this share of the CPUs")
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.1f}")
    torch.manual_seed(0)
    m = build_model('vanilla_vit', load_pretrained=False).eval()
    x = photo_crops(m.spec, a.n)
    modes = {'fp32': False, 'fast': 'fast', 'cast': 'cast', 'autocast': 'autocast'}
    run = lambda bs, mode: extract_embeddings(m, x, bs=bs, bf16=modes[mode], progress=False).feats
    feats, times = {}, {(bs, k): [] for bs in a.bs for k in modes}
    warm = {}
    for bs in a.bs:
        for k in modes:  # warm-up, and the features compared below
            t = time.perf_counter(); feats[bs, k] = run(bs, k); warm[bs, k] = time.perf_counter() - t
    print("warm-up calls (s): " + ', '.join(f"bs {bs} " + '/'.join(f"{warm[bs, k]:.2f}" for k in modes) for bs in a.bs)
          + " (fp32/fast/cast/autocast; the first 'cast' call allocates the bfloat16 weights)")
    ref = copy.deepcopy(m).to(torch.bfloat16)
    with torch.inference_mode(): direct = ref(x[:8].bfloat16()).float()
    print(f"'cast' vs model.to(torch.bfloat16): max abs difference {(feats[a.bs[0], 'cast'][:8] - direct).abs().max():.2e}")
    del ref
    quiet = []
    for r in range(a.rounds):
        order = list(modes)[r % len(modes):] + list(modes)[:r % len(modes)]
        (busy0, own0), w0 = cpu_seconds(), time.perf_counter()
        for bs in a.bs:
            for k in order:
                t = time.perf_counter(); run(bs, k); times[bs, k].append(time.perf_counter() - t)
        (busy1, own1), w1 = cpu_seconds(), time.perf_counter()
        other = ((busy1 - busy0) - (own1 - own0)) / ((w1 - w0) * os.cpu_count())
        quiet.append(other < a.quiet)
        print(f"round {r} (other processes used {other:.0%} of the CPUs): " + ', '.join(f"bs {bs} " + '/'.join(f"{a.n/times[bs, k][-1]:.2f}" for k in modes) for bs in a.bs), flush=True)
    q = [i for i, ok in enumerate(quiet) if ok]
    print(f"\n{len(q)} of {a.rounds} rounds were quiet (other processes below {a.quiet:.0%} of the CPUs)")
    print(f"img/s: median over the quiet rounds (all rounds), {a.n} images per call; speed-up over fp32: median of the "
          "per-round ratios, quiet rounds (all rounds)")
    print("cosine similarity to the fp32 features: min over images (centred in brackets)")
    med = lambda xs, idx: statistics.median([xs[i] for i in idx]) if idx else float('nan')
    bf = [k for k in modes if k != 'fp32']
    print(f"{'bs':>4} " + ' '.join(f"{k:>13}" for k in modes) + ' ' + ' '.join(f"{k + ' x':>15}" for k in bf) + '   ' + ' '.join(f"{'cos ' + k:>18}" for k in bf))
    for bs in a.bs:
        everything = range(a.rounds)
        ips = {k: f"{a.n / med(times[bs, k], q):.2f} ({a.n / med(times[bs, k], everything):.2f})" for k in modes}
        rat = {k: [f / b for f, b in zip(times[bs, 'fp32'], times[bs, k])] for k in modes}
        ratio = {k: f"{med(rat[k], q):.2f}x ({med(rat[k], everything):.2f}x)" for k in modes}
        f32 = feats[bs, 'fp32']
        cos = lambda k: F.cosine_similarity(feats[bs, k], f32).min().item()
        ccos = lambda k: F.cosine_similarity(feats[bs, k] - f32.mean(0), f32 - f32.mean(0)).min().item()
        print(f"{bs:>4} " + ' '.join(f"{ips[k]:>13}" for k in modes) + ' ' + ' '.join(f"{ratio[k]:>15}" for k in bf)
              + '   ' + ' '.join(f"{cos(k):.5f} ({ccos(k):.4f})" for k in bf))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
