#!/usr/bin/env python3
"""Write float64 golden fixtures of the PyTorch reference in the format of tests/golden/README.md.

    /usr/bin/python3 tests/golden/generate.py --reference ../shared/reference [--out tests/golden]
                                              [--only NAME ...] [--device cpu|cuda]

--reference is the folder that holds colt5-attention-X, local-attention-1.8.6 and einops-0.7.0
(the reference's sources, imported and run, never copied). Each case runs one reference module
or function in float64 on random inputs (parameters from torch.manual_seed(0), inputs from a
seeded generator), backpropagates loss = sum(output * g) for a random g, and stores inputs,
state_dict (parameters and persistent buffers), output, g and every gradient. The config names
the module and each constructor argument colt5's parity runner (tests/parity) reads.

Runs with Debian's python3-torch (1.13) on the CPU, or PyTorch on the GPU machine.
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from reference_models import fixture_tensors, write_safetensors  # noqa: E402  (the project's own)


def import_reference(root, colt5_version):
    for p in (f"einops-0.7.0", "local-attention-1.8.6", f"colt5-attention-{colt5_version}"):
        sys.path.insert(0, os.path.abspath(os.path.join(root, p)))
    import local_attention  # noqa: F401
    import colt5_attention.transformer_block as tb
    return sys.modules["local_attention"], tb


def randn(gen, shape, device):
    return torch.randn(*shape, generator=gen, device=device, dtype=torch.float64)


def mask_of(gen, b, n, device, p_drop=0.25):
    """A key padding mask (True = keep) that keeps position 0 of every row."""
    m = torch.rand(b, n, generator=gen, device=device, dtype=torch.float64) >= p_drop
    m[:, 0] = True
    return m


# ---------------------------------------------------------------------------------------------
# Cases: name -> (reference label, config, make(), forward(module, **inputs), input makers)

def local_mha_case(la, causal, n, window_size, masked, look_backward=1):
    look_forward = 0 if causal else 1
    config = {"module": "LocalMHA", "dim": 16, "dim_head": 8, "heads": 2, "window_size": window_size,
              "prenorm": True, "causal": causal, "use_rotary_pos_emb": True, "look_backward": look_backward,
              "look_forward": look_forward, "exact_windowsize": True, "autopad": True}

    def make():
        kw = {k: v for k, v in config.items() if k not in ("module", "autopad")}
        return la.LocalMHA(**kw)

    def forward(m, x, mask=None):
        return m(x, mask=mask)

    def inputs(gen, device):
        d = {"x": randn(gen, (2, n, 16), device).requires_grad_()}
        if masked:
            d["mask"] = mask_of(gen, 2, n, device)
        return d
    return config, make, forward, inputs


def routed_attention_case(tb, n, masked, batch=2, **extra):
    """0.11.1's ConditionalRoutedAttention; its router defaults (20 iterations, eps 0.03, eps_init 4,
    eps_decay 0.7) are written into the config, so that colt5 (0.4.8's defaults) builds the same."""
    router = {"n_iters": 20, "eps": 0.03, "eps_init": 4.0, "eps_decay": 0.7, **extra.pop("router_kwargs", {})}
    config = {"module": "ConditionalRoutedAttention", "dim": 16, "num_heavy_tokens_q": 5, "num_heavy_tokens_kv": 6,
              "num_routed_kv": 1, "light_dim_head": 4, "light_heads": 2, "light_window_size": 4, "heavy_dim_head": 4,
              "heavy_heads": 2, "router_kwargs": router, **extra}

    def make():
        kw = {k: v for k, v in config.items() if k not in ("module", "dim")}
        return tb.ConditionalRoutedAttention(config["dim"], **kw)

    def forward(m, x, mask=None):
        return m(x, mask=mask)

    def inputs(gen, device):
        d = {"x": randn(gen, (batch, n, 16), device).requires_grad_()}
        if masked:
            d["mask"] = mask_of(gen, batch, n, device)
        return d
    return config, make, forward, inputs


def router_case(tb, n, num_tokens, masked, **kw):
    """0.11.1's CoordinateDescentRouter; output = the selected scores, aux.indices = the picks."""
    config = {"module": "CoordinateDescentRouter", "dim": 6, "num_tokens": num_tokens, "n_iters": 20, "eps": 0.03,
              "eps_init": 4.0, "eps_decay": 0.7, **kw}

    def make():
        args = {k: v for k, v in config.items() if k not in ("module", "dim", "num_tokens")}
        return tb.CoordinateDescentRouter(config["dim"], **args)

    def forward(m, x, mask=None, routing_tokens=None):
        out = m(x, num_tokens=num_tokens, mask=mask, routing_tokens=routing_tokens)
        forward.aux = {"aux.indices": out.indices}
        return out.scores

    def inputs(gen, device):
        d = {"x": randn(gen, (2, n, 6), device).requires_grad_()}
        if masked:
            d["mask"] = mask_of(gen, 2, n, device)
        if kw.get("learned_routing_tokens"):
            d["routing_tokens"] = randn(gen, (2, kw.get("num_routing_tokens", 1), 6), device).requires_grad_()
        return d
    return config, make, forward, inputs


def topk_case(topk_mod, shape, k, masked, **kw):
    """0.11.1's differentiable topk (topk.py): output = values, aux.indices = indices."""
    config = {"op": "topk", "k": k, **kw}

    def forward(m, x, mask=None):
        out = topk_mod.topk(x, k, mask=mask, **kw)
        forward.aux = {"aux.indices": out.indices}
        return out.values

    def inputs(gen, device):
        d = {"x": randn(gen, shape, device).requires_grad_()}
        if masked:
            d["mask"] = mask_of(gen, shape[0], shape[1], device)
        return d
    return config, None, forward, inputs


def image_attention_case(tb):
    config = {"module": "ConditionalRoutedImageAttention", "dim": 16, "num_heavy_tokens_q": 3, "num_heavy_tokens_kv": 4,
              "light_dim_head": 4, "light_heads": 2, "light_window_size": 3, "heavy_dim_head": 4, "heavy_heads": 2,
              "channel_first": True, "multiply_keys_by_score": True}

    def make():
        kw = {k: v for k, v in config.items() if k not in ("module", "dim")}
        return tb.ConditionalRoutedImageAttention(config["dim"], **kw)

    def forward(m, x):
        return m(x)

    def inputs(gen, device):  # [b, dim, H, W]: 2 x 2 windows of 3 x 3
        return {"x": randn(gen, (2, 16, 6, 6), device).requires_grad_()}
    return config, make, forward, inputs


def vit_case(vit):
    config = {"module": "ConditionalRoutedViT", "image_size": 8, "patch_size": 2, "num_classes": 5, "dim": 16,
              "depth": 2, "attn_num_heavy_tokens_q": 2, "attn_num_heavy_tokens_kv": 3, "attn_heavy_dim_head": 4,
              "attn_heavy_heads": 2, "attn_light_dim_head": 4, "attn_light_heads": 2, "attn_light_window_size": 2,
              "ff_num_heavy_tokens": 5, "ff_heavy_mult": 2, "ff_light_mult": 0.5, "channels": 3,
              "flash_attn": False}  # torch 1.13 has no flash path

    def make():
        return vit.ConditionalRoutedViT(**{k: v for k, v in config.items() if k != "module"})

    def forward(m, img):
        return m(img)

    def inputs(gen, device):
        return {"img": randn(gen, (2, 3, 8, 8), device).requires_grad_()}
    return config, make, forward, inputs


def routed_ar_attention_case(tb, n, **extra):
    """0.11.1's ConditionalRoutedAutoregressiveAttention (its light LocalMHA has exact_windowsize=False)."""
    router = {"n_iters": 20, "eps": 0.03, "eps_init": 4.0, "eps_decay": 0.7}
    config = {"module": "ConditionalRoutedAutoregressiveAttention", "dim": 16, "num_heavy_tokens_q": 3,
              "num_heavy_tokens_kv": 5, "light_dim_head": 4, "light_heads": 2, "light_window_size": 4,
              "heavy_window_size": 4, "heavy_dim_head": 4, "heavy_heads": 2, "router_kwargs": router}
    config.update(extra)

    def make():
        kw = {k: v for k, v in config.items() if k not in ("module", "dim", "light_exact_windowsize")}
        return tb.ConditionalRoutedAutoregressiveAttention(config["dim"], **kw)

    def forward(m, x):
        return m(x)

    def inputs(gen, device):
        return {"x": randn(gen, (2, n, 16), device).requires_grad_()}
    config["light_exact_windowsize"] = False  # what 0.11.1 hard-codes (colt5's option, 0.4.8's True by default)
    return config, make, forward, inputs


def cases(la, tb):
    import importlib
    topk_mod = importlib.import_module("colt5_attention.topk")
    vit = importlib.import_module("colt5_attention.vit")
    return {
        # 0.11.1's autoregressive routed attention with heavy rotary: 15 tokens in 4 windows of 4
        # (the last padded), queries routed within windows, keys from each window's past
        "routed_ar_attention_0111_rotary": routed_ar_attention_case(tb, n=15, rotary_emb=True),
        # the same without routing (a window of 4 <= 4 queries, 8 padded tokens <= 8 keys): every
        # position rotated, in the order of the sequence
        "routed_ar_attention_0111_rotary_unrouted": routed_ar_attention_case(
            tb, n=7, rotary_emb=True, num_heavy_tokens_q=4, num_heavy_tokens_kv=8),
        # windowed light attention + per-window routed heavy attention on a feature map
        "image_attention_0111": image_attention_case(tb),
        # the routed ViT: patches, sin-cos positions, 2 blocks (image attention + routed ff), mean pool
        "vit_0111": vit_case(vit),
        # the differentiable top-k: eps-scaled, with a mask; and the defaults on a 3-D input
        "topk_0111_masked": topk_case(topk_mod, (3, 10), k=3, masked=True, eps=0.2, eps_init=2.0, eps_decay=0.8),
        "topk_0111": topk_case(topk_mod, (2, 2, 9), k=4, masked=False),
        # (no route_block_size case: 0.11.1's router fails with it, IndexError, because it gathers
        # the routed tokens with sequence positions from the block-shaped x; tests/test_routed.cpp
        # checks colt5's block routing against routing each block on its own)
        # eps-scaled, masked, straight-through off (the scores carry the routing gradient)
        "router_coor_descent_0111_masked": router_case(tb, n=14, num_tokens=5, masked=True, straight_through=False),
        # cosine similarity, two routes, straight-through on
        "router_coor_descent_0111_cosine": router_case(tb, n=12, num_tokens=4, masked=False, num_routing_tokens=2,
                                                       cosine_sim_routing=True, cosine_sim_scale=5.0),
        # routing tokens passed in by the caller (two routes, per batch row), straight-through off
        "router_coor_descent_0111_learned_tokens": router_case(tb, n=12, num_tokens=4, masked=True,
                                                               num_routing_tokens=2, learned_routing_tokens=True,
                                                               straight_through=False, eps=1.0),
        # 0.11.1: rotary positions in the heavy branch (two kv routes, eps-scaled routing)
        # (one kv route: 0.11.1's router gathers the routed tokens of a batch row >= 1 from the
        # wrong row when num_routing_tokens > 1 — batched_gather indexes the (b r)-merged tokens
        # with b — so a two-route fixture of batch 2 would pin down that bug; colt5 keeps 0.4.8's
        # per-row gather, and tests/golden/routed_attention has two routes)
        "routed_attention_0111_rotary": routed_attention_case(tb, n=11, masked=False, rotary_emb=True),
        "routed_attention_0111_rotary_masked": routed_attention_case(tb, n=13, masked=True, rotary_emb=True,
                                                                     multiply_keys_by_score=True),
        # 0.11.1: no light branch, cosine-similarity routing
        "routed_attention_0111_no_light_cosine": routed_attention_case(
            tb, n=11, masked=False, has_light_attn=False,
            router_kwargs={"cosine_sim_routing": True, "cosine_sim_scale": 6.0}),
        # n = 13 with w = 4: autopad to 16, look 1 / 1 (query offset lf w = 4), a key mask
        "local_mha_rotary_noncausal": local_mha_case(la, causal=False, n=13, window_size=4, masked=True),
        # causal, n = 21 with w = 8: three windows, the last one padded; look back 2 windows
        "local_mha_rotary_causal": local_mha_case(la, causal=True, n=21, window_size=8, masked=False,
                                                  look_backward=2),
    }


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", required=True, help="the folder holding colt5-attention-X, local-attention, einops")
    p.add_argument("--colt5-version", default="0.11.1", help="colt5-attention-X folder to import (default 0.11.1)")
    p.add_argument("--out", default=HERE, help="where the .safetensors files go (default: tests/golden)")
    p.add_argument("--only", nargs="*", default=None, help="case names (substrings) to write")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    la, tb = import_reference(args.reference, args.colt5_version)
    torch.set_default_dtype(torch.float64)
    label = f"local-attention {getattr(la, '__version__', '1.8.6')}, CoLT5-attention {args.colt5_version} " \
            f"(tests/golden/generate.py, torch {torch.__version__}, {args.device})"
    os.makedirs(args.out, exist_ok=True)
    for name, (config, make, forward, inputs) in cases(la, tb).items():
        if args.only and not any(s in name for s in args.only):
            continue
        t0 = time.perf_counter()
        torch.manual_seed(0)
        module = make().double().to(args.device) if make else None
        gen = torch.Generator(device=args.device).manual_seed(0)
        ins = inputs(gen, args.device)
        out = forward(module, **ins)
        g = randn(gen, out.shape, args.device)
        (out * g).sum().backward()
        tensors = {**fixture_tensors(module, ins, out, g), **getattr(forward, "aux", {})}
        path = os.path.join(args.out, name + ".safetensors")
        write_safetensors(path, tensors, {"config": json.dumps(config), "reference": label})
        print(f"{name}.safetensors  {os.path.getsize(path)} bytes  {time.perf_counter() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
