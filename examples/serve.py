"""Serving from Python with the standard library: batch single requests into one call.

Client threads each send one input at a time through a queue and wait for its result (a
Future). A server thread takes up to BATCH waiting requests, stacks them, and runs them as
one call of a model compiled for that batch (a lone request runs on the batch-1 build). An
MLP at batch 1 reads all its weights for one row; a batch reads them once for all its rows.

    python examples/serve.py [--clients 16] [--requests 40] [--batch 8]
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

import compiler
from compiler import nn

FEATURES = 512


def build_model() -> nn.Module:
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                         nn.ReLU(), nn.Linear(1024, 10)).eval()


def serve(requests: queue.Queue, one, batched, batch: int) -> None:
    """Answer requests until a None arrives: up to `batch` at a time, padded to `batch`."""
    while (first := requests.get()) is not None:
        taken = [first]
        while len(taken) < batch:
            try:
                item = requests.get_nowait()
            except queue.Empty:
                break
            if item is None:  # answer what we hold, then stop
                requests.put(None)
                break
            taken.append(item)
        xs = np.stack([x for x, _ in taken])
        if len(taken) == 1:
            ys = one(xs)
        else:  # pad a short batch with zero rows; their results are dropped
            ys = batched(np.concatenate([xs, np.zeros((batch - len(xs), FEATURES), xs.dtype)]))
        for (_, future), y in zip(taken, ys):
            future.set_result(y)


def run(one, batched, batch: int, inputs: list[np.ndarray]) -> tuple[float, list]:
    """Serve every client's inputs (one list per client); (requests/s, results by client)."""
    requests: queue.Queue = queue.Queue()
    results = [[] for _ in inputs]

    def client(k):
        for x in inputs[k]:
            future = Future()
            requests.put((x, future))
            results[k].append(future.result())

    server = threading.Thread(target=serve, args=(requests, one, batched, batch))
    clients = [threading.Thread(target=client, args=(k,)) for k in range(len(inputs))]
    start = time.perf_counter()
    server.start()
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    requests.put(None)
    server.join()
    return sum(map(len, inputs)) / (time.perf_counter() - start), results


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=40, help="per client")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args(argv)
    model = build_model()
    one = compiler.compile(model, np.zeros((1, FEATURES), np.float32))
    batched = compiler.compile(model, np.zeros((args.batch, FEATURES), np.float32))
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((args.requests, FEATURES)).astype(np.float32)
              for _ in range(args.clients)]
    unbatched_rate, unbatched = run(one, batched, 1, inputs)
    batched_rate, results = run(one, batched, args.batch, inputs)
    print(f"{args.clients} clients x {args.requests} requests, an MLP of "
          f"{sum(p.size for p in model.parameters()) / 1e6:.1f} M weights")
    print(f"  one request per call:        {unbatched_rate:8.0f} requests/s")
    print(f"  up to {args.batch} requests per call: {batched_rate:8.0f} requests/s "
          f"({batched_rate / unbatched_rate:.1f}x)")
    return {"model": model, "inputs": inputs, "results": results, "unbatched": unbatched,
            "rates": (unbatched_rate, batched_rate)}


if __name__ == "__main__":
    main()
