"""Cost of CLS attention maps against a plain forward pass: ViT-B/16 (random weights), CPU, float32 and bfloat16.

Usage: `python bench/attention.py [--rounds 12] [--batch 8] [--size 224]`

Variants, interleaved round-robin (the order rotates every round) after a warm-up, all under `torch.inference_mode`:
- `sdpa forward`: `model(x)`, the baseline;
- `last-layer maps`: `attention_maps(model, x)`, which stops after the last layer's attention;
- `forward + maps`: `model(x)` inside `capture_attention(model)`, the predictions and the maps in one pass;
- `eager forward`: `model(x, output_attentions=True)`, every layer eager.
Times are medians over the rounds; ratios are medians of the per-round ratios to that round's sdpa forward, which
cancels slow drifts in machine load. bfloat16 is the whole model cast with `model.to(torch.bfloat16)`."""
import argparse, os, platform, statistics
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch
from vitzoo.factory import build_model
from vitzoo.attention import attention_maps, capture_attention
from _timing import round_robin, paired_ratio

def variants(model, x):
    def with_maps():
        with capture_attention(model) as attns: model(x)
        return attns
    return {'sdpa forward': lambda: model(x), 'last-layer maps': lambda: attention_maps(model, x),
            'forward + maps': with_maps, 'eager forward': lambda: model(x, output_attentions=True)}

def bench(fns, rounds, warmup):
    times = round_robin(fns, rounds, warmup)
    return {n: (statistics.median(t), min(t), max(t), paired_ratio(times, n, 'sdpa forward')) for n, t in times.items()}

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=12)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=224)
    a = p.parse_args()
    torch.manual_seed(0)
    model = build_model('vanilla_vit', load_pretrained=False).eval()
    x = torch.randn(a.batch, 3, a.size, a.size)
    print(f"ViT-B/16 ({model.backbone.config._attn_implementation}), batch {a.batch}, {a.size}px, CPU: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"{a.rounds} rounds after {a.warmup} warm-up")
    rows = []
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            m, xb = model.to(dtype), x.to(dtype)
            ref = m(xb, output_attentions=True)['attentions'][-1][:, :, 0, m.num_prefix_tokens:].float()
            got = attention_maps(m, xb).flatten(-2)
            err = (got - ref/ref.sum(-1, keepdim=True)).abs().max().item()
            for n, (med, lo, hi, ratio) in bench(variants(m, xb), a.rounds, a.warmup).items():
                rows.append((str(dtype).removeprefix('torch.'), n, med, lo, hi, ratio))
            print(f"{dtype}: last-layer maps vs eager weights, max abs difference {err:.2e}", flush=True)
    print('\n| dtype | variant | median s | min s | max s | × sdpa forward |\n|---|---|---|---|---|---|')
    for d, n, med, lo, hi, ratio in rows: print(f"| {d} | {n} | {med:.3f} | {lo:.3f} | {hi:.3f} | {ratio:.3f} |")
