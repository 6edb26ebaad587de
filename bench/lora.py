"""LoRA (peft, through `vitzoo.lora.add_lora`) vs full fine-tuning vs a frozen backbone (head only).

Part 1, cost: ViT-B/16 (`build_model('vanilla_vit', load_pretrained=False)`, random weights, a 10-class `LinearHead`), CPU,
batch 16 at 224 px, fp32. One training step = `zero_grad`, forward, cross-entropy, backward, AdamW step over the trainable
parameters. The three variants are timed round-robin in one process (the order rotates each round) after one warm-up
step each; ratios are medians of per-round ratios. Peak memory: each variant runs 2 steps in a fresh child process, and
the child reports its peak RSS (`ru_maxrss`) and its RSS after building the model.
Part 2, accuracy: scikit-learn's digits (`vitzoo.data.digits_folder`, 32 px) and the digits tutorial's small ViT
(hidden 128, 4 layers, 4 heads, MLP 256, 8 px patches), pretrained from scratch for `--pre` epochs as the starting
point; then copies of that same model fine-tuned for `--ft` epochs with `fit_one_cycle`: LoRA (rank 8, q/k/v/o) vs full.
Usage: python bench/lora.py [--rounds 3] [--bs 16] [--pre 4] [--ft 4] [--skip-cost] [--skip-digits]"""
import argparse, copy, os, resource, statistics, subprocess, sys, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1')
warnings.filterwarnings('ignore')
import torch
import torch.nn.functional as F
from vitzoo.factory import build_model
from vitzoo.lora import add_lora, trainable_parameters
from _timing import round_robin, paired_ratio, cpu_seconds

VARIANTS = ('full', 'lora', 'frozen')

def make(variant):
    m = build_model('vanilla_vit', load_pretrained=False, head=10).train()
    if variant == 'lora': add_lora(m, 8)
    if variant == 'frozen': m.freeze_backbone()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
    return m, opt

def stepper(m, opt, x, y):
    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        opt.step()
    return step

def batch(bs):
    g = torch.Generator().manual_seed(0)
    return torch.randn(bs, 3, 224, 224, generator=g), torch.randint(0, 10, (bs,), generator=g)

def mem_child(variant, bs):
    m, opt = make(variant)
    rss0 = int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30
    step = stepper(m, opt, *batch(bs))
    for _ in range(2): step()
    print(f"{rss0:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.3f}")

def cost(a):
    mem = {}
    for v in VARIANTS:
        out = subprocess.run([sys.executable, __file__, '--mem', v, '--bs', str(a.bs)], capture_output=True, text=True, check=True)
        mem[v] = tuple(map(float, out.stdout.split()[-2:]))
    models = {v: make(v) for v in VARIANTS}
    counts = {v: trainable_parameters(m) for v, (m, _) in models.items()}
    x, y = batch(a.bs)
    busy0, own0 = cpu_seconds(); t0 = time.perf_counter()
    times = round_robin({v: stepper(m, o, x, y) for v, (m, o) in models.items()}, a.rounds)
    busy1, own1 = cpu_seconds(); wall = time.perf_counter() - t0
    print(f"\nViT-B/16, batch {a.bs}, 224 px, fp32, {a.rounds} rounds; other processes used {(busy1-busy0-(own1-own0))/wall:.2f} cores on average")
    print("| variant | trainable params | % of all | median s/step | min s/step | × full | peak RSS GiB | RSS after build GiB | peak - build GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v in VARIANTS:
        c, (r0, pk) = counts[v], mem[v]
        print(f"| {v} | {c['trainable']:,} | {c['percent']:.2f}% | {statistics.median(times[v]):.2f} | {min(times[v]):.2f} | "
              f"{paired_ratio(times, v, 'full'):.2f} | {pk:.2f} | {r0:.2f} | {pk - r0:.2f} |")

def digits(a):
    from fastai.vision.all import ImageDataLoaders, accuracy
    from vitzoo.data import digits_folder
    from vitzoo.learner import vit_learner
    torch.manual_seed(0)
    dls = ImageDataLoaders.from_folder(digits_folder(), valid='valid', bs=32, num_workers=0)
    cfg = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256, image_size=32, patch_size=8)
    model = build_model('vanilla_vit', load_pretrained=False, head=10, config_kwargs=cfg)
    def run(m, epochs, lr):
        learn = vit_learner(dls, m, metrics=accuracy, freeze_backbone=False)
        t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr, wd=0.05)
        return float(learn.validate()[1]), time.perf_counter() - t
    start_acc, t_pre = run(model, a.pre, 3e-3)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    rows = [('start (pretrained from scratch)', trainable_parameters(model)['trainable'], start_acc, t_pre, a.pre)]
    full = copy.deepcopy(model)
    lora = add_lora(copy.deepcopy(model), 8, targets='qkvo')
    n_lora = trainable_parameters(lora)['trainable']
    acc, t = run(lora, a.ft, 1e-2); rows.append(('LoRA r=8 qkvo + head', n_lora, acc, t, a.ft))
    same = all(torch.equal(v, lora.state_dict()[k.replace('q_proj.', 'q_proj.base_layer.').replace('k_proj.', 'k_proj.base_layer.')
                                                   .replace('v_proj.', 'v_proj.base_layer.').replace('o_proj.', 'o_proj.base_layer.')])
               for k, v in base.items() if k.startswith('backbone.'))
    acc, t = run(full, a.ft, 1e-3); rows.append(('full fine-tuning', trainable_parameters(full)['trainable'], acc, t, a.ft))
    print(f"\ndigits: LoRA left every base weight bit-identical: {same}")
    print("| model | trainable params | valid accuracy | train s | epochs |")
    print("|---|---|---|---|---|")
    for r in rows: print(f"| {r[0]} | {r[1]:,} | {r[2]:.3f} | {r[3]:.0f} | {r[4]} |")

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--rounds', type=int, default=3); p.add_argument('--bs', type=int, default=16)
    p.add_argument('--pre', type=int, default=4); p.add_argument('--ft', type=int, default=4)
    p.add_argument('--mem'); p.add_argument('--skip-cost', action='store_true'); p.add_argument('--skip-digits', action='store_true')
    a = p.parse_args()
    if a.mem: mem_child(a.mem, a.bs); sys.exit()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    if not a.skip_digits: digits(a)
    if not a.skip_cost: cost(a)
