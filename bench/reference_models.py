"""Helpers of bench/reference_bench.py: loading the PyTorch reference from its folders, the two
whole models the benchmark trains (a small language model and the C++ trainer's encoder), and a
minimal safetensors writer/reader (the GPU machine's Python has no safetensors package).

Nothing here is copied from the reference packages: the models are assembled from the
reference's own public modules, which are imported, never re-implemented.
"""
import ctypes
import importlib
import json
import os
import re
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------------------------
# The reference on sys.path

def version_from_folder(path, package):
    """'.../colt5-attention-0.4.8' -> '0.4.8' (None if the folder is not named package-X)."""
    m = re.fullmatch(re.escape(package) + r"-(\d+(?:\.\d+)*)", os.path.basename(os.path.normpath(path)))
    return m.group(1) if m else None


def module_version(mod, package):
    """A package's version: __version__, else the name of the folder it was imported from,
    else the installed distribution's metadata."""
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    folder = os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))
    v = version_from_folder(folder, package)
    if v:
        return v
    try:
        from importlib import metadata
        return metadata.version(package)
    except Exception:
        return None


class Reference:
    """The imported reference: one CoLT5-attention version plus local-attention and einops.
    One process holds one version (both releases are the package `colt5_attention`)."""

    def __init__(self, reference_dir, extra_paths, version=None):
        # Front of sys.path: these folders win over anything pip-installed.
        for p in reversed([reference_dir, *extra_paths]):
            sys.path.insert(0, os.path.abspath(p))
        self.colt5 = importlib.import_module("colt5_attention")
        self.tb = importlib.import_module("colt5_attention.transformer_block")
        self.attend = importlib.import_module("colt5_attention.attend")
        self.local_attention = importlib.import_module("local_attention")
        self.einops = importlib.import_module("einops")
        self.coor_descent = importlib.import_module("colt5_attention.coor_descent").coor_descent
        self.version = version or version_from_folder(reference_dir, "colt5-attention") or "unknown"

    def triton_coor_descent(self):
        # Imported only when asked for: without triton, the reference's module calls exit().
        return importlib.import_module("colt5_attention.triton_coor_descent").triton_coor_descent

    def versions(self):
        try:
            import triton
            triton_v = triton.__version__
        except Exception:
            triton_v = None
        import platform
        return {"torch": torch.__version__, "triton": triton_v, "colt5_attention": self.version,
                "local_attention": module_version(self.local_attention, "local-attention"),
                "einops": module_version(self.einops, "einops"), "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------
# Whole models

class ReferenceLM(nn.Module):
    """Byte-level language model: embedding, `depth` x (routed autoregressive attention and a
    feed-forward, each residual), a linear head with bias. forward(tokens) returns the
    next-token cross-entropy."""

    def __init__(self, ref, dim, depth, attn_kwargs, ff_mult=4, vocab=256, variant_kwargs=None):
        super().__init__()
        self.vocab = vocab
        self.token_emb = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([
            nn.ModuleList([ref.tb.ConditionalRoutedAutoregressiveAttention(dim, **attn_kwargs, **(variant_kwargs or {})),
                           ref.tb.FeedForward(dim, mult=ff_mult)])
            for _ in range(depth)])
        self.to_logits = nn.Linear(dim, vocab)

    def forward(self, tokens):
        x = self.token_emb(tokens)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        logits = self.to_logits(x)
        return F.cross_entropy(logits[:, :-1].reshape(-1, self.vocab), tokens[:, 1:].reshape(-1))


class ReferenceEncoder(nn.Module):
    """The C++ trainer's default model, mirrored: token + learned position embedding, routed
    transformer blocks (residuals inside the block), RMSNorm, the last position's state through a
    linear classifier. forward(tokens, targets) returns the cross-entropy."""

    def __init__(self, ref, vocab, dim, max_len, classes, depth, block_kwargs, variant_kwargs=None):
        super().__init__()
        self.token_emb = nn.Parameter(torch.randn(vocab, dim) * 0.02)
        self.pos_emb = nn.Parameter(torch.randn(max_len, dim) * 0.002)
        self.blocks = nn.ModuleList([
            ref.tb.ConditionalRoutedTransformerBlock(dim, **block_kwargs, **(variant_kwargs or {}))
            for _ in range(depth)])
        self.norm = ref.tb.RMSNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens, targets):
        h = self.token_emb[tokens] + self.pos_emb[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h)
        pooled = self.norm(h)[:, -1]
        return F.cross_entropy(self.head(pooled), targets)

    def param_groups(self, weight_decay):
        """The trainer's AdamW groups: decay matrices, not norms, null tokens or routing tokens."""
        decay, rest = [], []
        for name, p in self.named_parameters():
            plain = not any(s in name for s in ("norm", "null_", "routing_token"))
            (decay if p.dim() >= 2 and plain else rest).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header, raw little-endian data

ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.bool: "BOOL", torch.int64: "I64"}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}


def _raw_bytes(t):
    """The bytes of a contiguous CPU tensor, without numpy (which the GPU machine may lack)."""
    n = t.numel() * t.element_size()
    return memoryview((ctypes.c_ubyte * n).from_address(t.data_ptr())) if n else b""


def write_safetensors(path, tensors, metadata):
    """Write {name: tensor} and {str: str} metadata. Like the reference library, tensors are laid
    out by decreasing element size, then by name (so every tensor stays aligned)."""
    assert sys.byteorder == "little"
    items = sorted(((k, v.detach().cpu().contiguous()) for k, v in tensors.items()),
                   key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, offset = {"__metadata__": dict(metadata)}, 0
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # pad so the data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, t in items:
            f.write(_raw_bytes(t))
    os.replace(tmp, path)


def fixture_tensors(module, inputs, out, g):
    """The tensors of a golden fixture (tests/golden/README.md) after `(out * g).sum().backward()`:
    output, upstream_grad, input.* with grad.input.* of the floating ones, and, for a module,
    param.* (its state_dict) and grad.param.* (zeros for a parameter the backward did not reach)."""
    tensors = {"output": out, "upstream_grad": g}
    for k, t in inputs.items():
        tensors["input." + k] = t
        if t.is_floating_point():
            tensors["grad.input." + k] = t.grad if t.grad is not None else torch.zeros_like(t)
    if module is not None:
        for k, t in module.state_dict().items():
            tensors["param." + k] = t
        for k, p in module.named_parameters():
            tensors["grad.param." + k] = p.grad if p.grad is not None else torch.zeros_like(p)
    return tensors


def read_safetensors(path):
    """-> ({name: tensor}, metadata, [names in header order]) — a check of the writer."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        dtype = ST_TORCH[h["dtype"]]
        flat = torch.frombuffer(bytearray(body[a:b]), dtype=dtype) if b > a else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(h["shape"])
    return tensors, metadata, list(header)
