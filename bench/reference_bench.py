"""The PyTorch side of the side-by-side benchmark: times the *reference* implementation
(CoLT5-attention, local-attention, einops — imported from their folders, never copied) on fixed
workloads and writes a JSON file of timings with the same workload names as the C++ side's.
With --fixtures it instead writes float64 "fixtures" (the reference's outputs and gradients at
benchmark shapes, in the format of tests/golden) for the C++ parity checker.

    reference_bench.py --reference DIR [--extra-path DIR ...] [--version V] --device cpu|cuda
                       [--quick] [--only SUBSTRING ...] [--variants NAME,...] [--reps 10]
                       [--warmup 3] [--threads N] [--isolate] [--list] --json OUT.json
    reference_bench.py --reference DIR --device cuda|cpu --fixtures DIR

DIR is a CoLT5-attention folder (colt5-attention-0.4.8 or -0.11.1; one process imports one
version); --extra-path defaults to the local-attention-1.8.6 and einops-0.7.0 folders beside it.

Method. Inputs are float32 torch.randn from a torch.Generator seeded with 0 on the target device;
masks are None (coordinate descent gets an all-True mask, which 0.4.8's Triton kernel needs);
parameters come from torch.manual_seed(0); modules are in train mode; TF32 is off. A "fwd" call
is the forward under torch.no_grad(); a "fwdbwd" call is the forward on a leaf input, backward of
a fixed random upstream gradient, and every .grad set to None; lm_step / train_step calls are a
whole optimizer step. --warmup untimed calls (2 when a call takes > 1 s), then --reps timed
calls (5 for lm_step/b4n8192 or a call > 3 s); the row reports the median.
  GPU: CUDA events around each call; peak_bytes = torch.cuda.max_memory_allocated() over the
       row (module, inputs, activations), "memory": "allocator".
  CPU: time.perf_counter(); every row runs in a fresh subprocess of this script and
       peak_bytes = ru_maxrss at the end minus the RSS just before the row built anything,
       "memory": "rss".

Variants (impl), V = the reference version: `V` (plain PyTorch), `V-triton-flash` (use_triton
and use_flash_attn; GPU only), `V-compile` (torch.compile(module, dynamic=False), GPU only,
block rows; compile_s = first call's wall time minus the median), `torch-V` / `triton-V`
(coordinate descent alone), `sdpa`, `sdpa-bf16`, `attend-V` (heavy attention alone, 0.4.8 runs
only). --variants takes impl names, kinds (plain, triton-flash, compile, torch, triton, sdpa,
sdpa-bf16, attend) or groups: plain = V and torch-V, triton-flash = V-triton-flash and
triton-V, sdpa = sdpa and sdpa-bf16. Every variant runs inside try/except: a failure (out of memory included)
becomes a row with "status": "error: <Type>: <message>".

JSON (rewritten after every row, so a run cut short keeps what it measured):
  {"program", "device", "device_name", "versions": {torch, triton, colt5_attention,
   local_attention, einops, python}, "driver", "date", "threads", "load_avg" (at the start),
   "results": [{"workload", "impl", "status": "ok" | "error: ..." | "skipped: ...", "ms",
                "ms_min", "ms_max", "times_ms", "reps", "peak_bytes", "memory",
                "tokens_per_s", "compile_s", "note"}]}

Fixtures (0.4.8 only): bench_coor_descent, bench_heavy_attention, bench_local_mha,
bench_routed_attention, bench_routed_ff, bench_block, bench_routed_ar_attention; the modules of
the GPU workloads at their shapes, or with --device cpu the CPU shapes (the CPU block's
sub-modules at [1, 2048, 256], Attention(256, heads 4) on 256 tokens, the CPU LM layer).
--fixture-shapes cuda with --device cpu writes the GPU shapes on the CPU, as bench/run.sh does
for the GPU check: coordinate descent scores many tokens exactly 1.0, and only the CPU's topk
breaks those ties in the order colt5 reproduces.

Developer check (not a benchmark): --smoke runs the GPU workload list at tiny sizes on any
device, so that its code paths run on a CPU-only machine.
"""
import argparse
import copy
import datetime
import gc
import importlib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_models import Reference, ReferenceEncoder, ReferenceLM, fixture_tensors, read_safetensors, write_safetensors  # noqa: E402

REF = None  # the imported reference (set in main)
CUDA_ONLY = {"triton-flash", "compile", "triton"}
# --variants names: a group covers the like-for-like variants of every workload family
# (plain: the plain modules and plain coordinate descent; triton-flash: the Triton router /
# Triton coordinate descent; sdpa: float32 and bfloat16).
GROUP = {"plain": "plain", "torch": "plain", "triton-flash": "triton-flash", "triton": "triton-flash",
         "compile": "compile", "sdpa": "sdpa", "sdpa-bf16": "sdpa", "attend": "attend"}


# ---------------------------------------------------------------------------------------------
# Workloads

@dataclass
class Workload:
    name: str
    family: str  # coor_descent | heavy | module | lm | encoder
    cfg: dict
    kinds: list  # variant kinds, see impl_name
    quick: bool = False
    few_reps: bool = False  # may use 5 reps


def W(name, family, cfg, kinds, quick=False, few_reps=False):
    return Workload(name, family, cfg, list(kinds), quick, few_reps)


def impl_name(kind, v):
    return {"plain": v, "triton-flash": f"{v}-triton-flash", "compile": f"{v}-compile", "torch": f"torch-{v}",
            "triton": f"triton-{v}", "sdpa": "sdpa", "sdpa-bf16": "sdpa-bf16", "attend": f"attend-{v}"}[kind]


def coor_descent_workloads(sizes, quick_sizes, kinds, k):
    out = []
    for fam, cfg in (("coor_descent", dict(n_iters=50, eps=1.0)),
                     ("coor_descent_eps", dict(n_iters=20, eps=0.03, eps_init=4.0, eps_decay=0.7))):
        for rows, n in sizes:
            for mode in ("fwd", "fwdbwd"):
                out.append(W(f"{fam}/{mode}/{rows}x{n}", "coor_descent",
                             dict(cfg, rows=rows, n=n, k=k, mode=mode), kinds, (rows, n) in quick_sizes))
    return out


def routed_kwargs(d, heavy, heads, dh, win):
    attn = dict(num_heavy_tokens_q=heavy, num_heavy_tokens_kv=heavy, light_dim_head=dh, light_heads=heads,
                light_window_size=win, heavy_dim_head=dh, heavy_heads=heads)
    ff = dict(num_heavy_tokens=heavy, light_ff_mult=0.5, heavy_ff_mult=4)
    block = dict(num_heavy_attn_tokens_q=heavy, num_heavy_attn_tokens_kv=heavy, num_heavy_ff_tokens=heavy,
                 light_dim_head=dh, light_heads=heads, light_window_size=win, heavy_dim_head=dh, heavy_heads=heads,
                 light_ff_mult=0.5, heavy_ff_mult=4)
    return dict(dim=d, **attn), dict(dim=d, **ff), dict(dim=d, **block)


def local_mha_kwargs(d, heads, dh, win):
    # LocalMHA always builds its LocalAttention with autopad=True; passing autopad again is a
    # TypeError ("got multiple values for keyword argument 'autopad'"), so it is not passed.
    return dict(dim=d, dim_head=dh, heads=heads, window_size=win, prenorm=True, causal=False, look_backward=1,
                look_forward=1, exact_windowsize=True, use_rotary_pos_emb=False)


def ar_kwargs(heavy_q, heavy_kv, win, heads, dh):
    return dict(num_heavy_tokens_q=heavy_q, num_heavy_tokens_kv=heavy_kv, num_routed_kv=2, light_window_size=win,
                light_dim_head=dh, light_heads=heads, heavy_dim_head=dh, heavy_heads=heads)


def encoder_cfg(vocab, dim, n, batch, classes, heavy_q, heavy_kv, heavy_ff, dh, win, lr):
    block = dict(num_heavy_attn_tokens_q=heavy_q, num_heavy_attn_tokens_kv=heavy_kv, num_heavy_ff_tokens=heavy_ff,
                 light_dim_head=dh, light_heads=4, light_window_size=win, heavy_dim_head=dh, heavy_heads=4,
                 light_ff_mult=0.5, heavy_ff_mult=4)
    return dict(vocab=vocab, dim=dim, n=n, batch=batch, classes=classes, depth=2, block=block, lr=lr)


CPU_ENCODER = encoder_cfg(49, 64, 64, 32, 16, 8, 16, 8, 16, 16, 3e-3)
CPU_LM = dict(dim=128, depth=2, attn=ar_kwargs(16, 64, 64, 4, 32), b=4, n=512)


def gpu_workloads(smoke=False):
    """The GPU list. smoke: the same code paths at tiny sizes (names follow the shapes)."""
    d, heads, dh, heavy, win, n1, n2 = (64, 4, 16, 32, 32, 256, 512) if smoke else (512, 8, 64, 1024, 128, 8192, 32768)
    ws = coor_descent_workloads([(2, n1), (4, n2)], [(2, n1)], ["torch", "triton"], heavy * 9 / 8)
    hq, hkv, hh, hd = (64, 65, 2, 16) if smoke else (1024, 1025, 8, 64)
    ws.append(W(f"heavy_attention/fwdbwd/b2h{hh}q{hq}kv{hkv}d{hd}", "heavy", dict(b=2, h=hh, nq=hq, nkv=hkv, d=hd),
                ["sdpa", "sdpa-bf16", "attend"], quick=True))
    attn, ff, block = routed_kwargs(d, heavy, heads, dh, win)
    mha = local_mha_kwargs(d, heads, dh, win // 2)
    for fam, cls, kw, kinds in (("local_mha", "LocalMHA", mha, ["plain"]),
                                ("routed_attention", "ConditionalRoutedAttention", attn, ["plain", "triton-flash"]),
                                ("routed_ff", "ConditionalRoutedFeedForward", ff, ["plain", "triton-flash"])):
        for n, quick in ((n1, True), (n2, False)):
            ws.append(W(f"{fam}/fwdbwd/b2n{n}", "module", dict(cls=cls, kw=kw, x=[2, n, d], mode="fwdbwd"), kinds, quick))
    for n, quick in ((n1, True), (n2, False)):
        for mode in ("fwd", "fwdbwd"):
            ws.append(W(f"block/{mode}/b2n{n}", "module",
                        dict(cls="ConditionalRoutedTransformerBlock", kw=block, x=[2, n, d], mode=mode),
                        ["plain", "triton-flash", "compile"], quick))
    lm = dict(CPU_LM, b=2, n=256) if smoke else dict(dim=512, depth=4, attn=ar_kwargs(32, 1024, 128, 8, 64), b=4)
    for n, quick in (((256, True),) if smoke else ((2048, True), (8192, False))):
        ws.append(W(f"lm_step/b{lm['b']}n{n}", "lm", dict(lm, n=n), ["plain", "triton-flash"], quick,
                    few_reps=n == 8192))
    enc = CPU_ENCODER if smoke else encoder_cfg(129, 128, 256, 64, 32, 32, 64, 32, 32, 32, 1e-3)
    ws.append(W("train_step/gpu-preset", "encoder", enc, ["plain", "triton-flash"], quick=True))
    return ws


def cpu_workloads():
    ws = coor_descent_workloads([(2, 4096)], [(2, 4096)], ["torch"], 1152.0)
    _, _, block = routed_kwargs(256, 256, 4, 64, 128)
    for mode in ("fwd", "fwdbwd"):
        ws.append(W(f"block/{mode}/b1n2048d256", "module",
                    dict(cls="ConditionalRoutedTransformerBlock", kw=block, x=[1, 2048, 256], mode=mode), ["plain"], True))
    ws.append(W("local_mha/fwdbwd/b1n2048d256", "module",
                dict(cls="LocalMHA", kw=local_mha_kwargs(256, 4, 64, 64), x=[1, 2048, 256], mode="fwdbwd"), ["plain"], True))
    ws.append(W("lm_step/b4n512d128", "lm", CPU_LM, ["plain"], True))
    ws.append(W("train_step/cpu-preset", "encoder", CPU_ENCODER, ["plain"], True))
    return ws


def takes(fn, arg):
    """Whether fn has a parameter named arg (through decorators such as 0.11.1's autocast)."""
    return arg in inspect.signature(fn).parameters


def skip_reason(wl, kind, device):
    """'' to run, a reason to write a skipped row, None for no row at all."""
    if wl.family == "heavy" or wl.name.startswith("local_mha/"):
        if REF.version != "0.4.8":
            return None  # version-independent rows: measured once, with 0.4.8
    if "eps_init" in wl.cfg and not takes(REF.coor_descent, "eps_init"):
        return f"{REF.version} has no eps-scaling"
    if kind in CUDA_ONLY and device != "cuda":
        return "needs CUDA"
    return ""


# ---------------------------------------------------------------------------------------------
# Building one row's callable

@dataclass
class Case:
    step: object  # one timed call
    tokens: int = None  # tokens per call, for tokens_per_s
    model: object = None  # kept alive for the row
    extra: list = field(default_factory=list)


def variant_kwargs(cls, kind):
    if kind != "triton-flash":
        return {}
    # ConditionalRoutedFeedForward has no flash option.
    return {"use_triton": True} if cls == "ConditionalRoutedFeedForward" else {"use_triton": True, "use_flash_attn": True}


def make_module(cls, kw, kind, device):
    klass = REF.local_attention.LocalMHA if cls == "LocalMHA" else getattr(REF.tb, cls)
    torch.manual_seed(0)
    return klass(**kw, **variant_kwargs(cls, kind)).to(device)


def randn(gen, shape, device, dtype=torch.float32):
    return torch.randn(*shape, generator=gen, device=device, dtype=dtype)


def fwd_or_fwdbwd(fn, inputs, g, mode, module=None):
    """One call: forward under no_grad, or forward + backward of g + clearing every grad."""
    if mode == "fwd":
        def step():
            with torch.no_grad():
                fn(*inputs)
        return step
    for t in inputs:
        t.requires_grad_()

    def step():
        fn(*inputs).backward(g)
        if module is not None:
            module.zero_grad(set_to_none=True)
        for t in inputs:
            t.grad = None
    return step


def build_coor_descent(c, kind, device, gen):
    f = REF.coor_descent if kind == "torch" else REF.triton_coor_descent()
    kw = dict(n_iters=c["n_iters"], k=float(c["k"]), eps=c["eps"])
    if "eps_init" in c:
        kw.update(eps_init=c["eps_init"], eps_decay=c["eps_decay"])
    if kind == "triton" and takes(f, "checkpoint_segments"):
        kw["checkpoint_segments"] = c["n_iters"] // 5  # what 0.11.1's router passes
    s = randn(gen, (c["rows"], c["n"]), device)
    g = randn(gen, (c["rows"], c["n"]), device)
    mask = torch.ones(c["rows"], c["n"], dtype=torch.bool, device=device)
    return Case(fwd_or_fwdbwd(lambda t: f(t, mask=mask, **kw), [s], g, c["mode"]))


def build_heavy(c, kind, device, gen):
    dtype = torch.bfloat16 if kind == "sdpa-bf16" else torch.float32
    q = randn(gen, (c["b"], c["h"], c["nq"], c["d"]), device).to(dtype)
    k, v = (randn(gen, (c["b"], c["h"], c["nkv"], c["d"]), device).to(dtype) for _ in range(2))
    g = randn(gen, q.shape, device).to(dtype)
    fn = REF.attend.Attend().to(device) if kind == "attend" else F.scaled_dot_product_attention
    return Case(fwd_or_fwdbwd(fn, [q, k, v], g, "fwdbwd"), model=fn)


def build_module(c, kind, device, gen):
    module = make_module(c["cls"], c["kw"], "plain" if kind == "compile" else kind, device)
    x = randn(gen, c["x"], device)
    g = randn(gen, c["x"], device)
    # One compiled object per row; static shapes.
    fn = torch.compile(module, dynamic=False) if kind == "compile" else module
    return Case(fwd_or_fwdbwd(fn, [x], g, c["mode"], module), model=module)


def build_lm(c, kind, device, gen):
    torch.manual_seed(0)
    model = ReferenceLM(REF, c["dim"], c["depth"], c["attn"], ff_mult=4,
                        variant_kwargs=variant_kwargs("ConditionalRoutedAttention", kind)).to(device)
    tokens = torch.randint(0, 256, (c["b"], c["n"]), generator=gen, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def step():
        model(tokens).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return Case(step, tokens=c["b"] * c["n"], model=model, extra=[opt])


def build_encoder(c, kind, device, gen):
    torch.manual_seed(0)
    model = ReferenceEncoder(REF, c["vocab"], c["dim"], c["n"], c["classes"], c["depth"], c["block"],
                             variant_kwargs("ConditionalRoutedTransformerBlock", kind)).to(device)
    tokens = torch.randint(0, c["vocab"], (c["batch"], c["n"]), generator=gen, device=device)
    targets = torch.randint(0, c["classes"], (c["batch"],), generator=gen, device=device)
    opt = torch.optim.AdamW(model.param_groups(0.01), lr=c["lr"], betas=(0.9, 0.99))
    params = list(model.parameters())

    def step():
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the C++ trainer reads the loss every step: this sync is part of its step
    return Case(step, tokens=c["batch"] * c["n"], model=model, extra=[opt])


BUILDERS = dict(coor_descent=build_coor_descent, heavy=build_heavy, module=build_module, lm=build_lm,
                encoder=build_encoder)


# ---------------------------------------------------------------------------------------------
# Timing one row

def time_calls(step, device, warmup, reps, compiling, few_reps):
    """-> (times_ms, first_warmup_wall_ms, note)."""
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def wall_ms():
        sync()
        t = time.perf_counter()
        step()
        sync()
        return (time.perf_counter() - t) * 1e3

    def event_ms():
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        b.synchronize()
        return a.elapsed_time(b)

    notes = []
    # A compiled row: the compiling call, then at least 2 more warm-ups.
    n_warm = 1 + max(2, warmup - 1) if compiling else warmup
    warm = []
    for i in range(n_warm):
        if not compiling and i >= 2 and warm[-1] > 1000:
            notes.append("2 warm-ups (slow row)")
            break
        warm.append(wall_ms())
    if reps > 5 and (few_reps or (warm and warm[-1] > 3000)):
        reps = 5
        notes.append("5 reps (slow row)")
    times = [(event_ms if cuda else wall_ms)() for _ in range(reps)]
    return times, (warm[0] if warm else None), "; ".join(notes)


def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def empty_row(workload, impl, device, status):
    return {"workload": workload, "impl": impl, "status": status, "ms": None, "ms_min": None, "ms_max": None,
            "times_ms": [], "reps": 0, "peak_bytes": None, "memory": "allocator" if device == "cuda" else "rss",
            "tokens_per_s": None, "compile_s": None, "note": ""}


def error_status(e):
    if isinstance(e, SystemExit):  # colt5_attention.triton_coor_descent exit()s when triton is missing
        return "error: SystemExit: the reference called exit() (its triton module does so without triton)"
    lines = str(e).strip().splitlines()
    return f"error: {type(e).__name__}: {(lines[0] if lines else '')[:200]}"


def run_row(wl, kind, args):
    """Build and time one (workload, variant) in this process."""
    device = args.device
    row = empty_row(wl.name, impl_name(kind, REF.version), device, "ok")
    if args.smoke:
        row["note"] = "smoke (tiny sizes)"
    case = None
    try:
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        rss0 = current_rss() if device == "cpu" else 0
        gen = torch.Generator(device=device).manual_seed(0)
        case = BUILDERS[wl.family](wl.cfg, kind, device, gen)
        times, first, note = time_calls(case.step, device, args.warmup, args.reps, kind == "compile", wl.few_reps)
        if device == "cuda":
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
        ms = statistics.median(times)
        row.update(ms=ms, ms_min=min(times), ms_max=max(times), times_ms=times, reps=len(times), peak_bytes=int(peak),
                   tokens_per_s=case.tokens / (ms / 1e3) if case.tokens else None,
                   compile_s=(first - ms) / 1e3 if kind == "compile" else None,
                   note="; ".join(s for s in (row["note"], note) if s))
    except (Exception, SystemExit) as e:  # SystemExit: the reference's triton module exit()s without triton
        row["status"] = error_status(e)
    finally:
        case = None
        gc.collect()
        if kind == "compile" and hasattr(torch, "compile"):
            importlib.import_module("torch._dynamo").reset()  # the next compiled row starts afresh
        if device == "cuda":
            torch.cuda.empty_cache()
    return row


def run_row_in_child(wl, kind, args):
    """A CPU row in a fresh process of this script, so that ru_maxrss is this row's alone."""
    cmd = [sys.executable, os.path.abspath(__file__), "--reference", args.reference, "--device", args.device,
           "--reps", str(args.reps), "--warmup", str(args.warmup), "--child-row", f"{wl.name}::{kind}"]
    for p in args.extra_path:
        cmd += ["--extra-path", p]
    if args.version:
        cmd += ["--version", args.version]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.smoke:
        cmd.append("--smoke")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("@@ROW "):
            return json.loads(line[6:])
    err = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return empty_row(wl.name, impl_name(kind, REF.version), args.device,
                     f"error: child process exited with status {p.returncode}: {err[:200]}")


# ---------------------------------------------------------------------------------------------
# The benchmark run

def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or None


def driver_version():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except Exception:
        return None


def selected_rows(args):
    """[(workload, kind, skip reason or '')] after --quick, --only and --variants."""
    wls = gpu_workloads(args.smoke) if args.device == "cuda" or args.smoke else cpu_workloads()
    picked = []
    variants = set(args.variants.split(",")) if args.variants else None
    for wl in wls:
        if args.quick and not wl.quick:
            continue
        if args.only and not any(s in wl.name for s in args.only):
            continue
        for kind in wl.kinds:
            if variants and not ({kind, GROUP[kind], impl_name(kind, REF.version)} & variants):
                continue
            reason = skip_reason(wl, kind, args.device)
            if reason is not None:
                picked.append((wl, kind, reason))
    return picked


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def benchmark(args):
    rows = selected_rows(args)
    if args.list:
        for wl, kind, reason in rows:
            print(f"{wl.name:45s} {impl_name(kind, REF.version):22s} {('skipped: ' + reason) if reason else ''}")
        return
    doc = {"program": "reference_bench.py", "device": args.device, "device_name": device_name(args.device),
           "versions": REF.versions(), "driver": driver_version() if args.device == "cuda" else None,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "threads": torch.get_num_threads(),
           # CPU timings are only meaningful on an idle machine: with a busy core, every OpenMP
           # barrier waits for a time slice (we saw 10-100x slower small ops during a build).
           "load_avg": [round(x, 2) for x in os.getloadavg()], "results": []}
    isolate = args.device == "cpu" or args.isolate
    for i, (wl, kind, reason) in enumerate(rows, 1):
        if reason:
            row = empty_row(wl.name, impl_name(kind, REF.version), args.device, "skipped: " + reason)
        else:
            row = (run_row_in_child if isolate else run_row)(wl, kind, args)
        doc["results"].append(row)
        write_json(args.json, doc)
        ms = f"{row['ms']:.3f} ms" if row["ms"] is not None else row["status"]
        print(f"[{i}/{len(rows)}] {row['workload']} {row['impl']}: {ms}", file=sys.stderr, flush=True)


def child_row(args):
    name, kind = args.child_row.split("::")
    wl = next(w for w in (gpu_workloads(args.smoke) if args.device == "cuda" or args.smoke else cpu_workloads())
              if w.name == name)
    print("@@ROW " + json.dumps(run_row(wl, kind, args)), flush=True)


# ---------------------------------------------------------------------------------------------
# Fixtures

def fixture_cases(device, shapes):
    """[(name, config, make_module or None, forward(module, **inputs), {input name: shape})] at the
    benchmark shapes of `shapes` ("cpu" or "cuda"), built on `device`."""
    cpu = shapes == "cpu"
    d, heavy, heads, dh, win, x = (256, 256, 4, 64, 128, [1, 2048, 256]) if cpu else (512, 1024, 8, 64, 128, [2, 8192, 512])
    attn, ff, block = routed_kwargs(d, heavy, heads, dh, win)
    mha = local_mha_kwargs(d, heads, dh, 64)
    # The LM layer, but on the GPU with 128 routed keys/values (one window) instead of 1024: 0.4.8's
    # Attention drops the key mask the autoregressive attention builds, so wherever a window's
    # past holds fewer valid tokens than it routes (windows 1..7 of 128 tokens with 1024), the
    # reference attends to padding and to tokens of the future, and colt5 (which applies the mask)
    # cannot agree. With k = one window every routed token is a valid one in both.
    ar, ar_dim, ar_x = (CPU_LM["attn"], 128, [4, 512, 128]) if cpu else (ar_kwargs(32, 128, 128, 8, 64), 512, [4, 2048, 512])
    heavy_x = [1, heavy, d] if cpu else [2, 1024, 512]
    cd_n = 4096 if cpu else 8192
    mod = lambda cls, kw: (lambda: make_module(cls, kw, "plain", device))  # noqa: E731
    call = lambda m, **inp: m(**inp)  # noqa: E731
    return [
        ("bench_coor_descent", {"op": "coor_descent", "n_iters": 50, "k": 1152.0, "eps": 1.0, "masked": False}, None,
         lambda _, s: REF.coor_descent(s, n_iters=50, k=1152.0, eps=1.0), {"s": [2, cd_n]}),
        ("bench_heavy_attention", {"module": "Attention", "dim": d, "dim_head": 64, "heads": heads, "kv_routes": 1},
         mod("Attention", dict(dim=d, dim_head=64, heads=heads)), call, {"x": heavy_x, "context": heavy_x}),
        ("bench_local_mha", {"module": "LocalMHA", **mha, "autopad": True}, mod("LocalMHA", mha), call, {"x": x}),
        ("bench_routed_attention", {"module": "ConditionalRoutedAttention", **attn},
         mod("ConditionalRoutedAttention", attn), call, {"x": x}),
        ("bench_routed_ff", {"module": "ConditionalRoutedFeedForward", **ff}, mod("ConditionalRoutedFeedForward", ff),
         call, {"x": x}),
        ("bench_block", {"module": "ConditionalRoutedTransformerBlock", **block},
         mod("ConditionalRoutedTransformerBlock", block), call, {"x": x}),
        ("bench_routed_ar_attention", {"module": "ConditionalRoutedAutoregressiveAttention", "dim": ar_dim, **ar},
         mod("ConditionalRoutedAutoregressiveAttention", dict(dim=ar_dim, **ar)), call, {"x": ar_x}),
    ]


def compare_on_device(other, name, module, forward, inputs, g, tensors):
    """Diagnostic: the same case (same parameters, same inputs) through the reference on another
    device; prints max|a - b| / max|a| of the output and of each input gradient. It tells apart
    "colt5 differs from the reference" from "the reference differs from itself across devices"."""
    m = copy.deepcopy(module).to(other) if module is not None else None
    if m is not None:
        m.zero_grad(set_to_none=True)
    moved = {k: t.detach().to(other).requires_grad_() for k, t in inputs.items()}
    out = forward(m, **moved)
    (out * g.to(other)).sum().backward()

    def rel(a, b):
        a, b = a.detach().cpu(), b.detach().cpu()
        return ((a - b).abs().max() / a.abs().max().clamp_min(1e-300)).item()
    errs = [f"output {rel(tensors['output'], out):.2e}"]
    errs += [f"grad.input.{k} {rel(tensors['grad.input.' + k], t.grad):.2e}" for k, t in moved.items() if t.grad is not None]
    print(f"  {name}: the reference on {other} vs {args_device(inputs)}: " + "  ".join(errs), flush=True)


def args_device(inputs):
    return next(iter(inputs.values())).device.type


def write_fixtures(args):
    if REF.version != "0.4.8":
        sys.exit(f"--fixtures: the fixtures come from CoLT5-attention 0.4.8 (the version colt5 implements); "
                 f"got {REF.version}. Pass --reference .../colt5-attention-0.4.8.")
    os.makedirs(args.fixtures, exist_ok=True)
    # float64 all the way: 0.4.8's router builds its k as torch.tensor([k]) in the *default*
    # dtype, and a float32 log(k) moves the routers' gradients by ~1e-7 relative.
    torch.set_default_dtype(torch.float64)
    device, f64 = args.device, torch.float64
    reference = (f"CoLT5-attention {REF.version}, local-attention {REF.versions()['local_attention']} "
                 f"(reference_bench.py --fixtures, {device}, {args.fixture_shapes or device} shapes, no mask; "
                 f"0.4.8's Attention drops its key mask, unpatched)")
    for name, config, make, forward, shapes in fixture_cases(device, args.fixture_shapes or device):
        if args.only and not any(s in name for s in args.only):
            continue
        t0 = time.perf_counter()
        module = make().double() if make else None  # parameters from torch.manual_seed(0), in float64
        gen = torch.Generator(device=device).manual_seed(0)
        inputs = {k: randn(gen, s, device, f64).requires_grad_() for k, s in shapes.items()}
        out = forward(module, **inputs)
        g = randn(gen, out.shape, device, f64)
        (out * g).sum().backward()
        tensors = fixture_tensors(module, inputs, out, g)
        if args.compare_on:
            compare_on_device(args.compare_on, name, module, forward, inputs, g, tensors)
        path = os.path.join(args.fixtures, name + ".safetensors")
        write_safetensors(path, tensors, {"config": json.dumps(config), "reference": reference})
        print(f"{name}.safetensors  {os.path.getsize(path) / 2**20:.1f} MiB  {time.perf_counter() - t0:.1f} s",
              flush=True)
        del module, inputs, out, g, tensors
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.check:
        for f in sorted(os.listdir(args.fixtures)):
            if f.endswith(".safetensors"):
                tensors, meta, names = read_safetensors(os.path.join(args.fixtures, f))
                print(f, meta["config"])
                for n in names:
                    print(f"   {n} {str(tensors[n].dtype).replace('torch.', '')} {list(tensors[n].shape)}")


# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="Time (or write fixtures of) the PyTorch CoLT5-attention reference.",
                                epilog="Method, variants and the JSON schema: see this file's docstring.")
    p.add_argument("--reference", required=True, help="a colt5-attention-X folder")
    p.add_argument("--extra-path", action="append", default=None,
                   help="folder put on sys.path (repeatable; default: local-attention-1.8.6 and einops-0.7.0 "
                        "beside --reference)")
    p.add_argument("--version", help="the reference's version (default: from the folder name)")
    p.add_argument("--device", required=True, choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="only the quick subset")
    p.add_argument("--only", nargs="+", action="extend", default=[], help="workloads whose name contains one of these")
    p.add_argument("--variants", help="comma-separated impl names, kinds or groups (plain, triton-flash, compile, "
                                      "torch, triton, sdpa, sdpa-bf16, attend; see the docstring)")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch.set_num_threads on the CPU (default: os.cpu_count())")
    p.add_argument("--isolate", action="store_true", help="GPU too: every row in a fresh subprocess")
    p.add_argument("--list", action="store_true", help="print the selected rows and exit")
    p.add_argument("--json", help="output file of the timings")
    p.add_argument("--fixtures", metavar="DIR", help="write float64 fixtures to DIR instead of timing")
    p.add_argument("--check", action="store_true", help="with --fixtures: read the files back and list them")
    p.add_argument("--compare-on", choices=["cpu", "cuda"],
                   help="with --fixtures: also run every case through the reference on this device and print how far "
                        "it lands from the fixture (a diagnostic)")
    p.add_argument("--fixture-shapes", choices=["cpu", "cuda"],
                   help="with --fixtures: the shapes of this device's benchmark (default: --device). The GPU "
                        "benchmark's fixtures are made on the CPU (--device cpu --fixture-shapes cuda): the routers' "
                        "coordinate descent gives many tokens the score 1.0 exactly, and colt5 breaks such ties in "
                        "torch's CPU topk order, which CUDA's topk does not follow")
    p.add_argument("--smoke", action="store_true", help="developer check: the GPU workloads at tiny sizes")
    p.add_argument("--child-row", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.extra_path is None:
        parent = os.path.dirname(os.path.abspath(args.reference))
        args.extra_path = [os.path.join(parent, "local-attention-1.8.6"), os.path.join(parent, "einops-0.7.0")]
    if not (args.fixtures or args.child_row or args.list or args.json):
        p.error("--json OUT.json (or --fixtures DIR) is required")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def main(argv=None):
    global REF
    args = parse_args(argv)
    # Exact float32 everywhere: the C++ side does not use TF32 either.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if args.device == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count())
    REF = Reference(args.reference, args.extra_path, args.version)
    if args.child_row:
        child_row(args)
    elif args.fixtures:
        write_fixtures(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
