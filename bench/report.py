#!/usr/bin/env python3
"""Merge the JSON of colt5_bench and of reference_bench.py runs into one table.

    bench/report.py --out bench/results/cuda-2026-12-01 colt5.json ref-0.4.8.json ref-0.11.1.json \
        [--check check.txt] [--meta meta.json]

Writes OUT.json (every row of every input, grouped by workload, plus the machine and versions)
and OUT.md: one line per (workload, reference variant) with colt5's median time and peak memory,
the reference's, and the two ratios

    speed  = reference ms / colt5 ms          (> 1: colt5 is faster)
    memory = reference peak / colt5 peak      (> 1: colt5 needs less)

Only the standard library is used, so any python3 runs it (the GPU machine's or Debian's).
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import floors  # noqa: E402  (bench/floors.py)


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt_ms(ms):
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def fmt_mib(row):
    b = row.get("peak_bytes")
    return "" if b is None else f"{b / 2**20:.0f}" if b >= 100 * 2**20 else f"{b / 2**20:.1f}"


def fmt_ratio(num, den):
    if not num or not den:
        return ""
    r = num / den
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def cell_status(row):
    s = row.get("status", "")
    if s == "ok":
        return ""
    return s.replace("|", "/")[:120]


def extra(row):
    bits = []
    if row.get("tokens_per_s"):
        bits.append(f"{row['tokens_per_s'] / 1e3:.1f}k tok/s")
    if row.get("compile_s"):
        bits.append(f"compile {row['compile_s']:.0f} s")
    if row.get("note"):
        bits.append(row["note"])
    return "; ".join(bits)


def group(inputs):
    """{workload: {"colt5": row, "refs": [row, ...], "what": str}} in colt5's order, then others."""
    out = {}
    for doc in inputs:
        for row in doc.get("results", []):
            g = out.setdefault(row["workload"], {"colt5": None, "refs": [], "what": ""})
            if row.get("what"):
                g["what"] = row["what"]
            if row.get("impl") == "colt5":
                g["colt5"] = row
            else:
                g["refs"].append(row)
    return out


def machine(inputs, meta):
    m = {"device": None, "device_name": None, "driver": None, "date": None, "threads": None, "versions": {}}
    for doc in inputs:
        for k in ("device", "device_name", "driver", "date", "threads"):
            if doc.get(k) and not m[k]:
                m[k] = doc[k]
        for k, v in (doc.get("versions") or {}).items():
            if v is not None:
                m["versions"].setdefault(k, v)
    m.update({k: v for k, v in meta.items() if v})
    return m


def read_ceilings(path):
    """The card's measured ceilings from bench_ops' table: the device-to-device copy's GB/s and
    the float32 GEMM's TFLOP/s with TF32 off. None where the file or a line is missing."""
    if not path or not os.path.exists(path):
        return None
    text = open(path).read()
    copy = re.search(r"^\| copy[^|]*\|[^|]*\|[^|]*\| *([0-9.]+) *\|", text, re.M)
    gemm = re.search(r"^\| gemm \|[^|]*\|[^|]*\| *([0-9.]+) TFLOP/s", text, re.M)
    if not copy or not gemm:
        return None
    return {"tbps": float(copy.group(1)) / 1e3, "tflops": float(gemm.group(1))}


def floor_ms(name, ceilings):
    if not ceilings:
        return None
    f = floors.floors(ceilings["tflops"], ceilings["tbps"]).get(name)
    return None if f is None else max(f[2], f[3])


def fraction(floor, row):
    if floor is None or not row or row.get("status") != "ok" or floor <= 0:
        return ""
    return f"{100 * floor / row['ms']:.1f}%" if floor / row["ms"] >= 0.001 else "<0.1%"


PLAIN = ("0.4.8", "torch-0.4.8", "attend-0.4.8")  # the reference colt5 implements, as its users get it


def summary(groups):
    """One line per workload: colt5, plain 0.4.8, and the fastest float32 reference variant."""
    lines = ["| workload | colt5 ms | 0.4.8 ms | speed | fastest float32 reference | ms | speed | colt5 MiB | 0.4.8 MiB |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for name, g in groups.items():
        c = g["colt5"]
        if c is None or c.get("status") != "ok":
            continue
        ok = [r for r in g["refs"] if r.get("status") == "ok"]
        plain = next((r for r in ok if r["impl"] in PLAIN), None)
        f32 = [r for r in ok if "bf16" not in r["impl"]]
        best = min(f32, key=lambda r: r["ms"]) if f32 else None
        lines.append("| " + " | ".join([
            name, fmt_ms(c["ms"]), fmt_ms(plain["ms"]) if plain else "", fmt_ratio(plain["ms"], c["ms"]) if plain else "",
            best["impl"] if best else "", fmt_ms(best["ms"]) if best else "", fmt_ratio(best["ms"], c["ms"]) if best else "",
            fmt_mib(c), fmt_mib(plain) if plain else ""]) + " |")
    return lines


def markdown(m, groups, check, ceilings=None):
    v = m["versions"]
    lines = [f"# colt5 vs the PyTorch reference: {m['device_name']} ({m['device']})", ""]
    lines.append(f"- date: {m['date']}; " + (f"driver {m['driver']}; " if m.get("driver") else "")
                 + f"threads: {m['threads']}" + (f"; colt5 commit {m['commit']}" if m.get("commit") else ""))
    lines.append("- versions: " + ", ".join(f"{k} {val}" for k, val in sorted(v.items())))
    lines.append("- method: median of the timed calls after warm-up (CUDA events on the GPU, a steady "
                 "clock on the CPU), TF32 off, float32; peak = "
                 + ("the caching allocator's peak (torch.cuda.max_memory_allocated and colt5's)"
                    if m["device"] == "cuda" else "peak resident set size above the row's start, each row in a fresh process"))
    lines.append("- speed = reference ms / colt5 ms, memory = reference peak / colt5 peak: above 1 colt5 is faster / leaner")
    lines += ["", "## Summary", ""] + summary(groups) + ["", "## Every variant", ""]
    if ceilings:
        lines.append(f"- floor = max(FLOPs / {ceilings['tflops']:.1f} TFLOP/s, bytes / {ceilings['tbps']:.2f} TB/s), "
                     "the card's float32 GEMM and copy rates measured by bench_ops in the same run (bench/floors.py); "
                     "'of floor' = floor / time")
    head = ["workload", "colt5 ms", "colt5 MiB", "reference", "ref ms", "ref MiB", "speed", "memory"]
    align = ["---", "---:", "---:", "---", "---:", "---:", "---:", "---:"]
    if ceilings:
        head += ["floor ms", "colt5 of floor", "ref of floor"]
        align += ["---:", "---:", "---:"]
    lines += ["", "| " + " | ".join(head + ["notes"]) + " |", "|" + "|".join(align + ["---"]) + "|"]
    for name, g in groups.items():
        c = g["colt5"]
        c_ok = c is not None and c.get("status") == "ok"
        c_ms = fmt_ms(c["ms"]) if c_ok else ("" if c is None else cell_status(c))
        c_mib = fmt_mib(c) if c_ok else ""
        c_note = extra(c) if c_ok else ""
        fl = floor_ms(name, ceilings)
        refs = g["refs"] or [None]
        for i, r in enumerate(refs):
            first = i == 0
            r_ok = r is not None and r.get("status") == "ok"
            cols = [name if first else "", c_ms if first else "", c_mib if first else ""]
            if r is None:
                cols += ["(none)", "", "", "", ""]
            else:
                cols += [r["impl"], fmt_ms(r["ms"]) if r_ok else cell_status(r), fmt_mib(r) if r_ok else "",
                         fmt_ratio(r["ms"], c["ms"]) if r_ok and c_ok else "",
                         fmt_ratio(r.get("peak_bytes"), c.get("peak_bytes")) if r_ok and c_ok else ""]
            if ceilings:
                cols += ["" if fl is None or not first else f"{fl:.3f}", fraction(fl, c) if first else "",
                         fraction(fl, r)]
            notes = [p + x for p, x in (("colt5: ", c_note if first else ""), ("ref: ", extra(r) if r_ok else "")) if x]
            cols.append("; ".join(notes))
            lines.append("| " + " | ".join(cols) + " |")
    if check:
        lines += ["", "## Same computation (reference fixtures at the benchmark shapes, golden_parity)", "", "```",
                  check.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="JSON files of colt5_bench and reference_bench.py")
    ap.add_argument("--out", required=True, help="output path without extension")
    ap.add_argument("--check", help="text output of the parity check, appended to the report")
    ap.add_argument("--meta", help="JSON object of extra machine facts (driver, commit, ...)")
    ap.add_argument("--ceilings", help="bench_ops output of the same run: the card's copy and GEMM rates, for the floors")
    a = ap.parse_args()
    inputs = []
    for p in a.inputs:
        if not os.path.exists(p):
            print(f"report.py: {p} is missing (that part did not run); left out", file=sys.stderr)
            continue
        inputs.append(load(p))
    if not inputs:
        sys.exit("report.py: no input file could be read")
    meta = load(a.meta) if a.meta and os.path.exists(a.meta) else {}
    check = open(a.check).read() if a.check and os.path.exists(a.check) else ""
    groups = group(inputs)
    m = machine(inputs, meta)
    ceilings = read_ceilings(a.ceilings)
    m["ceilings"] = ceilings
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump({"machine": m, "workloads": groups, "check": check}, f, indent=1)
        f.write("\n")
    with open(a.out + ".md", "w") as f:
        f.write(markdown(m, groups, check, ceilings))
    print(f"wrote {a.out}.json and {a.out}.md")


if __name__ == "__main__":
    main()
