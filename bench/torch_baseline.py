"""PyTorch baseline for bench_ops, same shapes and method: CUDA events, 5 warm-ups, median of 30.
CoLT5's RMSNorm is F.normalize(x, dim=-1) * sqrt(d) * gamma."""
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"


def median_ms(f, warmup=5, reps=30):
    for _ in range(warmup):
        f()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


N, rows, cols = 64 << 20, 16384, 4096
mib = N * 4
g = torch.Generator(device=dev).manual_seed(1)
a = torch.randn(N, device=dev, generator=g)
b = torch.randn(N, device=dev, generator=g)
dst = torch.empty_like(a)
x2 = a.view(rows, cols)
gamma = torch.randn(cols, device=dev, generator=g)
t_copy = median_ms(lambda: dst.copy_(a))
bw_copy = 2 * mib / (t_copy * 1e-3) / 1e9
print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
print("| op (torch) | median ms | GB/s | vs copy |\n|---|---:|---:|---:|")
print(f"| copy_ | {t_copy:.3f} | {bw_copy:.0f} | 100% |")
for name, nbytes, f in [
    ("add", 3 * mib, lambda: a + b),
    ("sum (row)", mib, lambda: x2.sum(1)),
    ("softmax", 2 * mib, lambda: torch.softmax(x2, 1)),
    ("rms_norm (F.normalize*scale*gamma)", 2 * mib, lambda: F.normalize(x2, dim=-1) * cols ** 0.5 * gamma),
]:
    t = median_ms(f)
    bw = nbytes / (t * 1e-3) / 1e9
    print(f"| {name} | {t:.3f} | {bw:.0f} | {100 * bw / bw_copy:.0f}% |")
M = 4096
ga = torch.randn(M, M, device=dev, generator=g)
gb = torch.randn(M, M, device=dev, generator=g)
for tf32 in (False, True):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    t = median_ms(lambda: ga @ gb, 3, 20)
    print(f"| matmul{' (TF32 on)' if tf32 else ''} 4096^3 | {t:.3f} | {2 * M**3 / (t * 1e-3) / 1e12:.1f} TFLOP/s | |")
