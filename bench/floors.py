#!/usr/bin/env python3
"""The two floors of every GPU workload of bench/: arithmetic over the peak rate, bytes over bandwidth.

    bench/floors.py [--tflops 51] [--tbps 4.3]     # prints the table of bench/README.md

FLOPs count the matrix products (2·m·n·k each), which is where the arithmetic is: a linear layer
x[N, i] W^T[i, o] costs 2·N·i·o forward and twice that backward (dx and dW); an attention core of
q queries over k keys (d per head, h heads) costs 4·q·k·d·h forward (q k^T and p v) and twice that
backward (dv, dp, dq, dk) without recomputation. So forward + backward = 3 x forward. Norms,
softmax and elementwise work are left out (memory-bound and small beside the products).
Keys per query are those a query can actually see (an exact local window of w keys either way is
2w + 1 keys; the null key of the heavy attention counts), and routed work counts the routed tokens
only, each projected once: that is the floor of the best algorithm, not of the reference's.

Bytes are the fewest an ideal implementation moves: every input read once, every output written
once (forward: x, the parameters, out; forward + backward adds g, dx and the parameter
gradients; a training step adds AdamW's reads and writes of p, g, m, v), nothing else.

Rates: float32 without tensor cores (TF32 off, as every row is run): the measured cuBLAS SGEMM
rate of the card (bench_ops); bandwidth: the measured device-to-device copy (read + write).
Coordinate descent is neither: its T iterations are a chain of T dependent reductions per row,
and its floor is that chain's latency, not arithmetic or bytes (see bench/README.md).
"""
import argparse

F32 = 4


def linear(n, i, o):
    return 2 * n * i * o


def attention_core(q, k, d, h):
    return 4 * q * k * d * h


def local_mha(n_tokens, dim, heads, dim_head, keys_per_query):
    """LocalMHA forward FLOPs and parameter count: to_qkv, the windowed core, to_out."""
    inner = heads * dim_head
    flops = linear(n_tokens, dim, 3 * inner) + linear(n_tokens, inner, dim)
    flops += attention_core(n_tokens, keys_per_query, dim_head, heads)
    params = dim * 3 * inner + inner * dim + 2 * dim
    return flops, params


def heavy_attention(n_q, n_kv_tokens, kv_per_query, dim, heads, dim_head):
    """CoLT5's Attention: to_q on the routed queries, to_kv on the routed keys/values (each
    projected once), the core over kv_per_query keys + the null key, to_out."""
    inner = heads * dim_head
    flops = linear(n_q, dim, inner) + linear(n_kv_tokens, dim, 2 * inner) + linear(n_q, inner, dim)
    flops += attention_core(n_q, kv_per_query + 1, dim_head, heads)
    params = dim * inner * 4 + 2 * inner + dim
    return flops, params


def feedforward(n_tokens, dim, mult):
    hidden = int(dim * mult)
    return linear(n_tokens, dim, hidden) + linear(n_tokens, hidden, dim), 2 * dim * hidden + hidden + 2 * dim


def routed_attention(b, n, dim=512, kq=1024, kkv=1024, heads=8, dim_head=64, light_window=64):
    f1, p1 = local_mha(b * n, dim, heads, dim_head, 2 * light_window + 1)
    f2, p2 = heavy_attention(b * kq, b * kkv, kkv, dim, heads, dim_head)
    return f1 + f2, p1 + p2 + 3 * dim


def routed_ff(b, n, dim=512, k=1024):
    f1, p1 = feedforward(b * n, dim, 0.5)
    f2, p2 = feedforward(b * k, dim, 4)
    return f1 + f2, p1 + p2 + dim


def block(b, n, dim=512, k=1024, heads=8):
    fa, pa = routed_attention(b, n, dim, k, k, heads)
    ff, pf = routed_ff(b, n, dim, k)
    return fa + ff, pa + pf


def lm_step(b, n, dim=512, depth=4, kq=32, kkv=1024, routes=2, window=128, heads=8, dim_head=64, vocab=256):
    """The LM of the benchmark: per layer a causal LocalMHA (exact window: w + 1 keys), the heavy
    branch (queries routed per window of `window` tokens, windows 1.. only; keys/values: every
    token projected once, each query's head sees min(kkv, prefix) routed tokens of its route),
    FeedForward(dim, 4); a head. Returns forward FLOPs and the parameter count."""
    N = b * n
    windows = n // window
    f = 0
    p = 0
    for _ in range(depth):
        fl, pl = local_mha(N, dim, heads, dim_head, window + 1)
        f += fl
        p += pl
        inner = heads * dim_head
        q_tokens = b * (windows - 1) * min(kq, window)
        f += linear(q_tokens, dim, inner) + linear(N, dim, 2 * inner) + linear(q_tokens, inner, dim)
        for i in range(1, windows):  # window i's queries see min(kkv, i * window) keys (+ null)
            f += attention_core(b * min(kq, window), min(kkv, i * window) + 1, dim_head, heads)
        p += 4 * dim * inner + dim * (1 + 1 + routes)
        ff, pf = feedforward(N, dim, 4)
        f += ff
        p += pf
    f += linear(N, dim, vocab)
    p += vocab * dim + dim * vocab + vocab
    return f, p


def train_preset(b=64, n=256, dim=128, depth=2, kq=32, kkv=64, kff=32, heads=4, dim_head=32, light_window=16,
                 vocab=129, classes=32):
    f = 0
    p = vocab * dim + n * dim + dim + dim * classes + classes
    for _ in range(depth):
        fa, pa = local_mha(b * n, dim, heads, dim_head, 2 * light_window + 1)
        fh, ph = heavy_attention(b * kq, b * kkv, kkv, dim, heads, dim_head)
        f1, p1 = feedforward(b * n, dim, 0.5)
        f2, p2 = feedforward(b * kff, dim, 4)
        f += fa + fh + f1 + f2
        p += pa + ph + p1 + p2 + 4 * dim
    return f, p


def rows():
    """(workload, FLOPs, bytes) of every GPU workload."""
    out = []
    for rows_, n in ((2, 8192), (4, 32768)):
        e = rows_ * n
        for eps in ("coor_descent", "coor_descent_eps"):
            out.append((f"{eps}/fwd/{rows_}x{n}", 0, e * (F32 + 1 + F32)))
            out.append((f"{eps}/fwdbwd/{rows_}x{n}", 0, e * (F32 + 1 + F32 + F32 + F32)))
    q = 2 * 8 * 1024 * 64 * F32
    kv = 2 * 8 * 1025 * 64 * F32
    out.append(("heavy_attention/fwdbwd/b2h8q1024kv1025d64", 3 * attention_core(2 * 1024, 1025, 64, 8),
                4 * q + 4 * kv))
    for n in (8192, 32768):
        act = 2 * n * 512 * F32  # one [b, n, dim] float32 tensor

        def fb(flops_params, passes=3):
            f, p = flops_params
            return passes * f, 4 * act + 2 * p * F32  # x, g read; out, dx written; params read, grads written

        f, p = local_mha(2 * n, 512, 8, 64, 129)
        out.append((f"local_mha/fwdbwd/b2n{n}", *fb((f, p))))
        out.append((f"routed_attention/fwdbwd/b2n{n}", *fb(routed_attention(2, n))))
        out.append((f"routed_ff/fwdbwd/b2n{n}", *fb(routed_ff(2, n))))
        f, p = block(2, n)
        out.append((f"block/fwd/b2n{n}", f, 2 * act + p * F32))
        out.append((f"block/fwdbwd/b2n{n}", *fb((f, p))))
    for n in (2048, 8192):
        f, p = lm_step(4, n)
        # tokens (int64) once, parameters: read in forward and backward, grads written, AdamW's
        # p, g, m, v read and p, m, v written.
        out.append((f"lm_step/b4n{n}", 3 * f, 4 * n * 8 + p * F32 * (2 + 1 + 7)))
    f, p = train_preset()
    out.append(("train_step/gpu-preset", 3 * f, 64 * 256 * 8 + p * F32 * (2 + 1 + 7)))
    return out


def floors(tflops, tbps):
    """{workload: (flops, bytes, compute_ms, memory_ms)}"""
    return {w: (f, b, f / (tflops * 1e12) * 1e3, b / (tbps * 1e12) * 1e3) for w, f, b in rows()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflops", type=float, default=51.0, help="float32 matrix rate, TFLOP/s (TF32 off)")
    ap.add_argument("--tbps", type=float, default=4.3, help="memory bandwidth, TB/s (copy, read + write)")
    a = ap.parse_args()
    print(f"| workload | GFLOP | MB moved | compute floor ms ({a.tflops:g} TFLOP/s) | memory floor ms ({a.tbps:g} TB/s) |")
    print("|---|---:|---:|---:|---:|")
    for w, (f, b, fc, fm) in floors(a.tflops, a.tbps).items():
        print(f"| {w} | {f / 1e9:.1f} | {b / 1e6:.1f} | {fc:.3f} | {fm:.4f} |")


if __name__ == "__main__":
    main()
