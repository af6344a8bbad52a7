"""
Generation speed, in process: names per second for n = 1 .. 10000 through the service's sampler
(cached per-level state, one batch), beside

  (a) the seed notebook's generate() loop, re-implemented faithfully: one name at a time, a forward
      pass over the full context window per character, same checkpoint;
  (b) the service's batched sampler without the cache: every step runs forward() over the whole
      context window of every sequence.

All three sample from the same checkpoint in the same process, one after the other, so their ratio
is the figure that counts. Then names/s of every shipped model (n = 1000), for the quality/speed
trade-off.

    python -m bench.generate                       # default model, n = 1, 10, 100, 1000, 10000
    python -m bench.generate --sizes 1,1000 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from app.inference.batches import sample_names
from app.inference.checkpoint import build_loop, load_checkpoint
from app.inference.engine import MIN_ROWS, Sampling
from app.inference.loaded import LoadedModel
from app.inference.sampling import SampleSpec
from tests.support import MODELS


@torch.inference_mode()
def seed_generate(model: LoadedModel, n: int, seed: int) -> list[str]:
    """The seed notebook's sampling loop: for each name, start from a context of boundary tokens,
    run the model on the whole window, sample, shift the window, until the boundary comes out."""
    gen = torch.Generator().manual_seed(seed)
    block_size = model.context_length
    out = []
    for _ in range(n):
        context = [0] * block_size
        chars = []
        while True:
            logits = model.module(torch.tensor([context]))
            probs = F.softmax(logits, dim=1)
            ix = int(torch.multinomial(probs, num_samples=1, generator=gen).item())
            context = context[1:] + [ix]  # noqa: RUF005 (as the seed wrote it)
            if ix == 0:
                break
            chars.append(ix)
        out.append(model.decode(chars))
    return out


def service_sampler(model: LoadedModel) -> Callable[[int, int], list[str]]:
    def run(n: int, seed: int) -> list[str]:
        # unique=False: every path returns exactly n samples, so names/s compare like for like
        return sample_names(
            model, SampleSpec(n=n, unique=False, sampling=Sampling(max_length=64)), seed
        ).names

    return run


def rate(fn: Callable[[int, int], list[str]], n: int, repeats: int) -> float:
    """Median names per second over `repeats` runs (after one warm-up run on small n)."""
    fn(min(n, 10), 0)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        names = fn(n, r)
        times.append(time.perf_counter() - t0)
        assert len(names) == n
    return n / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", default="names", help="checkpoint name in --models-dir")
    p.add_argument("--models-dir", type=Path, default=MODELS, help="folder of *.pt checkpoints")
    p.add_argument("--sizes", default="1,10,100,1000,10000", help="comma-separated n values")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median is reported)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument(
        "--seed-max-n", type=int, default=10000, help="skip the slow seed loop above this n (printed as -)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]

    cached = load_checkpoint(args.models_dir / f"{args.model}.pt")
    # the same module driven through forward(): a batch loop of its own over StepAdapter (the
    # loaded model's loop runs the checkpoint's step)
    loop = build_loop(cached.path, cached.module, False, cached.context_length, cached.labels, cached.starts)
    uncached = dataclasses.replace(cached, incremental=False, loop=loop)
    print(f"model {cached.name}: {cached.meta['parameters']:,} parameters, context {cached.context_length}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeats}\n")
    header = f"| {'n':>6} | {'seed loop':>10} | {'batched, no cache':>17} | {'service (cached)':>16} |"
    header += f" {'vs seed':>8} | {'vs no cache':>11} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for n in sizes:
        seed = (
            rate(lambda k, g: seed_generate(cached, k, g), n, args.repeats) if n <= args.seed_max_n else None
        )
        batched = rate(service_sampler(uncached), n, args.repeats)
        service = rate(service_sampler(cached), n, args.repeats)
        seed_s = f"{seed:>10,.0f}" if seed else f"{'-':>10}"
        ratio = f"{service / seed:>7.1f}x" if seed else f"{'-':>8}"
        print(
            f"| {n:>6} | {seed_s} | {batched:>17,.0f} | {service:>16,.0f} | {ratio} "
            f"| {service / batched:>10.1f}x |"
        )

    print("\nevery model in --models-dir, service sampler: names/s at n = 1000; a lone n = 1 request's")
    print(f"median ms; one step of the checkpoint at {MIN_ROWS} rows (what a lone request computes), µs:\n")
    print(f"| {'model':<13} | {'parameters':>10} | {'test loss':>9} | {'names/s':>9} | n = 1 ms | step µs |")
    print(f"|{'-' * 15}|{'-' * 12}|{'-' * 11}|{'-' * 11}|{'-' * 10}|{'-' * 9}|")
    for path in sorted(args.models_dir.glob("*.pt")):
        m = load_checkpoint(path)
        r = rate(service_sampler(m), 1000, args.repeats)
        lone = 1000 / rate(service_sampler(m), 1, 200 * args.repeats)
        print(
            f"| {m.name:<13} | {m.meta['parameters']:>10,} "
            f"| {m.meta['metrics']['test_loss']:>9.4f} | {r:>9,.0f} | {lone:>8.2f} "
            f"| {f'{step_us(m):.0f}' if m.incremental else '-':>7} |"
        )


@torch.inference_mode()
def step_us(model: LoadedModel, steps: int = 2000) -> float:
    """Median µs of one call of the checkpoint's step on MIN_ROWS rows (of five timed runs)."""
    idx = torch.zeros(MIN_ROWS, dtype=torch.long)
    state = model.module.init_state(MIN_ROWS)
    times = []
    for _ in range(6):  # the first run warms up
        t0 = time.perf_counter()
        for _ in range(steps):
            _, state = model.module.step(idx, state)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) / steps * 1e6


if __name__ == "__main__":
    main()
