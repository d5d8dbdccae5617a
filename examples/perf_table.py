#!/usr/bin/python3
"""The recurrent training-step table of the README, measured back to back.

    python3 examples/perf_table.py [--repeats 3] [--threads 1,2] [--dtype f32]
                                   [--configs course,rnn-s,lstm-m,lstm-l,lstm-m-var]
                                   [--onednn PATH] [--pytorch]
                                   [--readme FILE [--block NAME]]

For every config and thread count it runs, interleaved and --repeats times,
tapegrad's `make bench` program (build/examples/bench, fused and tape
paths), oneDNN's training-step program when --onednn names one (see
../shared/anchors/README.md: a measuring tool, never a dependency), and
PyTorch's fused layers when --pytorch is given (examples/bench_pytorch.py,
with /usr/bin/python3's torch). It prints the machine line of the bench,
then a markdown table of ms per step: the median of the repeats with
their range, and the ratios fused / tape and fused / oneDNN computed from
runs made together. With --readme FILE it also writes the same lines
between the markers <!-- NAME --> and <!-- /NAME --> of FILE (NAME is
--block, perf-table by default), so a README's table is produced by this
command, never typed. Nothing
here is part of the library or its tests.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "build", "examples", "bench")


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"perf_table: {' '.join(cmd)} failed:\n{out.stderr}")
    return out.stdout


def tapegrad(config, path, dtype, threads):
    out = run([BENCH, "--only", "recurrent", "--config", config, "--path", path, "--dtype", dtype,
               "--threads", str(threads)])
    line = [l for l in out.splitlines() if l.startswith("bench config=")][-1]
    return float(re.search(r"ms_per_step=([0-9.e+-]+)", line).group(1)), out


def onednn(binary, config, dtype, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    name = "float32" if dtype == "f32" else "float64"
    line = run([binary, config, name, str(threads)], env).strip().splitlines()[-1]
    return 1e3 * json.loads(line)["median_s"]


def pytorch(config, dtype, threads):
    out = run(["/usr/bin/python3", os.path.join(HERE, "bench_pytorch.py"), "--config", config,
               "--impl", "fused", "--dtype", dtype, "--threads", str(threads)])
    line = [l for l in out.splitlines() if l.startswith("pytorch config=")][-1]
    return float(re.search(r"ms_per_step=([0-9.e+-]+)", line).group(1))


def cell(values):
    if not values:
        return "-"
    med = statistics.median(values)
    digits = 4 if med < 1 else 1 if med >= 100 else 2
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratio(a, b):
    pairs = [x / y for x, y in zip(a, b)]
    return f"{min(pairs):.2f}-{max(pairs):.2f}" if pairs else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--configs", default="course,rnn-s,lstm-m,lstm-l,lstm-m-var")
    ap.add_argument("--onednn", help="the path of a built onednn_step program")
    ap.add_argument("--pytorch", action="store_true")
    ap.add_argument("--readme", help="also write the table into this file's marked block")
    ap.add_argument("--block", default="perf-table", help="the name in the block's markers")
    a = ap.parse_args()
    machine = None
    rows = []
    for config in a.configs.split(","):
        for threads in [int(t) for t in a.threads.split(",")]:
            got = {"fused": [], "tape": [], "onednn": [], "pytorch": []}
            for _ in range(a.repeats):
                ms, out = tapegrad(config, "fused", a.dtype, threads)
                machine = machine or [l for l in out.splitlines() if l.startswith("machine")]
                got["fused"].append(ms)
                if not config.endswith("-var"):
                    got["tape"].append(tapegrad(config, "tape", a.dtype, threads)[0])
                    if a.onednn:
                        got["onednn"].append(onednn(a.onednn, config, a.dtype, threads))
                    if a.pytorch:
                        got["pytorch"].append(pytorch(config, a.dtype, threads))
            rows.append((config, threads, got))
    out = ["```text", *(machine or []), "```", ""]
    commit = run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"]).strip()
    out.append(f"{time.strftime('%Y-%m-%d')}, commit {commit}, {a.dtype}, ms per training step, "
               f"median (range) of {a.repeats} interleaved runs")
    out.append("")
    head = "| config | threads | tapegrad fused | tapegrad tape | fused / tape |"
    if a.onednn:
        head += " oneDNN | fused / oneDNN |"
    if a.pytorch:
        head += " PyTorch fused | fused / PyTorch |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for config, threads, got in rows:
        line = (f"| {config} | {threads} | {cell(got['fused'])} | {cell(got['tape'])} | "
                f"{ratio(got['fused'], got['tape'])} |")
        if a.onednn:
            line += f" {cell(got['onednn'])} | {ratio(got['fused'], got['onednn'])} |"
        if a.pytorch:
            line += f" {cell(got['pytorch'])} | {ratio(got['fused'], got['pytorch'])} |"
        out.append(line)
    print("\n".join(out))
    if a.readme:
        write_between_markers(a.readme, a.block, out)


def write_between_markers(path, name, lines):
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = open(path).read()
    if begin not in text or end not in text:
        sys.exit(f"perf_table: {path} has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)

if __name__ == "__main__":
    main()
