#!/usr/bin/env python3
"""Times an hrm package's model.onnx in ONNX Runtime (its PyPI wheel), for comparison with
`hrm bench` on the same machine and the same file.

    python3 tools/bench_onnxruntime.py PACKAGE_DIR [--threads 2] [--batch 1 8] [--iterations 20]
"""

import argparse
import pathlib
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=pathlib.Path)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = ONNX Runtime's default)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    started = time.perf_counter()
    session = ort.InferenceSession(str(args.package / "model.onnx"), options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - started) * 1e3
    shape = session.get_inputs()[0].shape
    print(f"onnxruntime {ort.__version__}, {args.threads or 'default'} threads (load {load_ms:.0f} ms)")
    print(f"{'batch':>6} {'median ms':>12} {'min ms':>12} {'ms/image':>12} {'images/s':>12}")
    for batch in args.batch:
        x = np.random.default_rng(0).uniform(-1, 1, size=(batch, *shape[1:])).astype(np.float32)
        for _ in range(args.warmup):
            session.run(None, {"input": x})
        times = []
        for _ in range(args.iterations):
            t = time.perf_counter()
            session.run(None, {"input": x})
            times.append((time.perf_counter() - t) * 1e3)
        median = statistics.median(times)
        print(f"{batch:>6} {median:>12.1f} {min(times):>12.1f} {median / batch:>12.1f} {1e3 * batch / median:>12.1f}")


if __name__ == "__main__":
    main()
