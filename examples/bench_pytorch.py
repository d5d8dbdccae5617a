#!/usr/bin/python3
"""PyTorch reference for `make bench`'s recurrent section (a measurement, not a test).

This script is NOT used by `make bench` and tapegrad never depends on
PyTorch: it measures, on the same machine and in the same session, the
figures that examples/README.md's "Recurrent training step" table sets beside
tapegrad's. Run it with a Python that has torch (Debian's python3-torch is
1.13, linked to the system BLAS, OpenBLAS here):

    /usr/bin/python3 examples/bench_pytorch.py                 # everything
    /usr/bin/python3 examples/bench_pytorch.py --config lstm-m --impl fused \
        --dtype f32 --threads 1 --steps 50                     # one run

The training step is the one of examples/bench.c: a recurrent layer over all
T steps, a linear output layer on every step, softmax cross-entropy (mean)
and the full backward (every weight gradient and dx), no optimizer step.
Two implementations:
    fused  nn.RNN / nn.LSTM over the whole sequence (PyTorch's own kernels);
    loop   an autograd loop of nn.RNNCell / nn.LSTMCell, one call per step.
FLOPs count the matmuls only, 2 per multiply-add, forward and backward:
3 * 2 m T (G n_a (n_x + n_a) + n_y n_a), G = 4 for the LSTM, 1 for the RNN.

Each (config, impl, dtype, threads) runs in a fresh process with
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to the thread count (as well as
torch.set_num_threads), so that the BLAS threads follow too and
peak_rss_mib (ru_maxrss of that process, the import of torch included) is
the run's own. Lines look like

    pytorch config=lstm-m impl=fused dtype=f32 threads=1 ms_per_step=97.3 gflops=53.8 peak_rss_mib=295

and a table follows. ms_per_step is the median over --steps steps after a
warm-up step (--best: the fastest).
"""
import argparse
import os
import statistics
import subprocess
import sys

CONFIGS = {
    # name: (cell, n_x, n_a, n_y, m, T, default steps)
    "course": ("rnn", 27, 50, 27, 1, 20, 400),
    "rnn-s": ("rnn", 64, 128, 64, 32, 32, 100),
    "lstm-m": ("lstm", 128, 256, 128, 32, 64, 20),
    "lstm-l": ("lstm", 512, 512, 512, 64, 100, 3),
}


def step_flops(name):
    cell, n_x, n_a, n_y, m, T, _ = CONFIGS[name]
    gates = 4 if cell == "lstm" else 1
    return 3.0 * 2.0 * m * T * (gates * n_a * (n_x + n_a) + n_y * n_a)


def run_one(name, impl, dtype_name, threads, steps, best):
    """One run in this process; prints the result line."""
    import resource
    import time

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    dtype = torch.float32 if dtype_name == "f32" else torch.float64
    cell, n_x, n_a, n_y, m, T, _ = CONFIGS[name]
    if impl == "fused":
        rnn = (torch.nn.LSTM(n_x, n_a) if cell == "lstm" else torch.nn.RNN(n_x, n_a)).to(dtype)
    else:
        rnn = (torch.nn.LSTMCell(n_x, n_a) if cell == "lstm" else torch.nn.RNNCell(n_x, n_a)).to(dtype)
    head = torch.nn.Linear(n_a, n_y).to(dtype)
    x = torch.randn(T, m, n_x, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, n_y, (T * m,))
    params = list(rnn.parameters()) + list(head.parameters())

    def step():
        for p in params:
            p.grad = None
        x.grad = None
        if impl == "fused":
            h, _ = rnn(x)  # (T, m, n_a)
        else:
            state = None
            outs = []
            for t in range(T):
                state = rnn(x[t], state)
                outs.append(state[0] if cell == "lstm" else state)
            h = torch.stack(outs)
        logits = head(h).reshape(T * m, n_y)
        loss = F.cross_entropy(logits, targets)
        loss.backward()

    step()  # warm up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = 1e3 * (min(times) if best else statistics.median(times))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"pytorch config={name} impl={impl} dtype={dtype_name} threads={threads} "
          f"ms_per_step={ms:.4g} gflops={step_flops(name) / ms * 1e-6:.1f} "
          f"peak_rss_mib={rss:.0f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="course,rnn-s,lstm-m,lstm-l")
    ap.add_argument("--impl", default="fused,loop", help="fused, loop or both")
    ap.add_argument("--dtype", default="f32,f64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=0, help="0: each config's default")
    ap.add_argument("--best", action="store_true", help="fastest step instead of the median")
    ap.add_argument("--run", action="store_true", help=argparse.SUPPRESS)  # one run, in-process
    a = ap.parse_args()
    configs, impls = a.config.split(","), a.impl.split(",")
    dtypes, threads = a.dtype.split(","), [int(t) for t in a.threads.split(",")]
    if a.run:
        run_one(configs[0], impls[0], dtypes[0], threads[0],
                a.steps or CONFIGS[configs[0]][6], a.best)
        return
    results = {}
    for name in configs:
        for dt in dtypes:
            for impl in impls:
                for n in threads:
                    env = dict(os.environ, OMP_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n))
                    cmd = [sys.executable, __file__, "--run", "--config", name, "--impl", impl,
                           "--dtype", dt, "--threads", str(n), "--steps",
                           str(a.steps or CONFIGS[name][6])] + (["--best"] if a.best else [])
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    line = out.stdout.strip()
                    if out.returncode != 0 or not line:
                        print(f"pytorch: {name} {impl} {dt} {n} threads failed:\n{out.stderr}",
                              file=sys.stderr)
                        continue
                    print(line, flush=True)
                    fields = dict(kv.split("=") for kv in line.split()[1:])
                    results[(name, dt, impl, n)] = fields
    print(f"\n{'config':8} {'dtype':5} {'impl':6}" +
          "".join(f"  {n} thread{'s' if n > 1 else ' '} ms/step (GFLOP/s)" for n in threads) +
          "  peak RSS")
    for name in configs:
        for dt in dtypes:
            for impl in impls:
                row = [results.get((name, dt, impl, n)) for n in threads]
                if not any(row):
                    continue
                cells = "".join(f"  {float(r['ms_per_step']):19.3f} ({float(r['gflops']):7.1f})"
                                if r else f"  {'-':>29}" for r in row)
                rss = max(float(r["peak_rss_mib"]) for r in row if r)
                print(f"{name:8} {dt:5} {impl:6}{cells}  {rss:4.0f} MiB")


if __name__ == "__main__":
    main()
