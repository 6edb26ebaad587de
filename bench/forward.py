"""Forward throughput of ViT-B/16 on this machine: vitzoo (eager and `fast_inference`) vs the raw transformers backbone vs timm, fp32 and bf16.

Also the achieved GFLOP/s against a measured matmul peak. Run from the repository root:
    .venv/bin/python bench/forward.py [--rounds 10] [--bs 8] [--compiled]
`--compiled` adds timm under `torch.compile` (inductor with weight freezing), compiled once per dtype before timing.
Variants are timed round-robin (the order rotates each round) after warm-up; ratios are medians of per-round ratios."""
import argparse, os, statistics, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch
from _timing import round_robin, paired_ratio

def vit_b16_flops(n_img, size=224, patch=16, d=768, layers=12, mlp=3072):
    "FLOPs (2 per multiply-add) of a ViT-B/16 forward without head"
    n = (size//patch)**2 + 1
    per_layer = 2*(4*n*d*d + 2*n*d*mlp + 2*n*n*d)
    return n_img * (layers*per_layer + 2*(n-1)*3*patch*patch*d)

def matmul_peak(dtype, n=2048, reps=10):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3): a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
    return 2*n**3 / statistics.median(ts) / 1e9

def main():
    p = argparse.ArgumentParser(); p.add_argument('--rounds', type=int, default=10); p.add_argument('--bs', type=int, default=8)
    p.add_argument('--compiled', action='store_true')
    a = p.parse_args()
    import timm, transformers
    from vitzoo.factory import build_model
    from vitzoo.fast import fast_inference
    from vitzoo.registry import get_spec
    torch.manual_seed(0)
    vz = build_model('vanilla_vit', load_pretrained=False).eval()
    hf = transformers.ViTModel(vz.config, add_pooling_layer=False).eval()
    hf.load_state_dict(vz.backbone.state_dict())
    tm = timm.create_model('vit_base_patch16_224', pretrained=False, num_classes=0).eval()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, batch {a.bs}")
    flops = vit_b16_flops(a.bs)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        models = dict(vitzoo=vz.to(dtype), hf_raw=hf.to(dtype), timm=tm.to(dtype))
        x = torch.randn(a.bs, 3, 224, 224, dtype=dtype)
        fast = fast_inference(vz, dtype)
        call = dict(vitzoo=lambda: vz(x), vitzoo_fast=lambda: fast(x), hf_raw=lambda: hf(x).last_hidden_state[:, 0], timm=lambda: tm(x))
        if a.compiled:
            torch._inductor.config.freezing = True
            tc = torch.compile(tm)
            call['timm_compiled'] = lambda: tc(x)
        with torch.inference_mode():
            torch.testing.assert_close(call['vitzoo']().float(), call['hf_raw']().float())
            cos = torch.nn.functional.cosine_similarity(call['vitzoo_fast']().float(), call['vitzoo']().float()).min().item()
            assert cos > 0.999, cos
            print(f"{dtype}: vitzoo_fast vs vitzoo embeddings, min cosine {cos:.6f}")
            times = round_robin(call, a.rounds, warmup=2)
        peak = matmul_peak(dtype)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = lambda k, ref: paired_ratio(times, ref, k)  # img/s of k over ref's = time of ref over k's
        for k in call:
            rows.append((str(dtype).split('.')[-1], k, med[k], a.bs/med[k], flops/med[k]/1e9, peak,
                         ratio(k, 'hf_raw'), ratio(k, 'timm')))
    print(f"\n| dtype | model | median s/batch | img/s | GFLOP/s | matmul peak GFLOP/s | % of peak | img/s vs hf_raw | img/s vs timm |")
    print('|---|---|---|---|---|---|---|---|---|')
    for d, k, t, ips, gf, pk, rh, rt in rows:
        print(f"| {d} | {k} | {t:.3f} | {ips:.2f} | {gf:.0f} | {pk:.0f} | {100*gf/pk:.0f}% | {rh:.3f}× | {rt:.3f}× |")

if __name__ == '__main__': main()
