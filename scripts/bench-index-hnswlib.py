#!/usr/bin/env python3
"""distill's HNSW and hnswlib side by side, on the same vectors, in one run.

Runs `distill-bench index --json --dump DIR`, which generates the data set, computes the exact
neighbours, builds and measures distill's index, and writes the vectors and the ground truth to DIR;
then builds hnswlib on those same vectors with the same M, efConstruction and efSearch values
(one thread for the build and for the queries, like distill-bench), and prints both.

    pip install hnswlib numpy
    swift build -c release --product distill-bench
    scripts/bench-index-hnswlib.py [--bench .build/release/distill-bench] [--n 100000] [--queries 1000]

hnswlib builds with -march=native by default; `HNSWLIB_NO_NATIVE=1 pip install --no-binary hnswlib
hnswlib` builds it for the x86-64 baseline, which is what `swift build` targets unless told otherwise.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import hnswlib
import numpy as np


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_hnswlib(directory, report, repeats):
    n, dim, queries = report["n"], report["dim"], report["queries"]
    base = np.fromfile(os.path.join(directory, "base.f32"), dtype="<f4").reshape(n, dim)
    query = np.fromfile(os.path.join(directory, "queries.f32"), dtype="<f4").reshape(queries, dim)
    truth = np.fromfile(os.path.join(directory, "truth.i32"), dtype="<i4").reshape(queries, 10)

    before = resident_bytes()
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=report["m"], ef_construction=report["ef_construction"], random_seed=100)
    started = time.perf_counter()
    index.add_items(base, np.arange(n), num_threads=1)
    build = time.perf_counter() - started
    resident = resident_bytes() - before

    sweep = []
    for point in report["sweep"]:
        index.set_ef(point["ef"])
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            labels, _ = index.knn_query(query, k=10, num_threads=1)
            best = min(best, time.perf_counter() - started)
        hits = sum(len(set(found) & set(expected)) for found, expected in zip(labels.tolist(), truth.tolist()))
        sweep.append({"ef": point["ef"], "recall10": hits / (10 * queries), "qps": queries / best})
        print(f"hnswlib: ef {point['ef']}: recall@10 {sweep[-1]['recall10']}, {int(sweep[-1]['qps'])} queries/s", file=sys.stderr)
    return {"build_s": build, "rss_bytes_per_entry": resident / n, "sweep": sweep}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=".build/release/distill-bench", help="the distill-bench executable")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the queries per efSearch; the fastest counts")
    parser.add_argument("--json", action="store_true", help="print both reports as one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        command = [args.bench, "index", "--json", "--n", str(args.n), "--queries", str(args.queries),
                   "--repeats", str(args.repeats), "--dump", directory]
        distill = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
        print(f"hnswlib {hnswlib.__file__}: building, one thread", file=sys.stderr)
        other = run_hnswlib(directory, distill, args.repeats)

    if args.json:
        print(json.dumps({"distill": distill, "hnswlib": other}, indent=2))
        return
    print(f"n {distill['n']}, dim {distill['dim']}, {distill['queries']} queries, "
          f"M {distill['m']}, efConstruction {distill['ef_construction']}, one thread throughout")
    print(f"build s: distill {distill['build_s']:.2f}, hnswlib {other['build_s']:.2f}, "
          f"ratio {distill['build_s'] / other['build_s']:.3f}")
    print(f"resident bytes/entry: distill {distill['rss_bytes_per_entry']:.0f} "
          f"(accounted {distill['bytes_per_entry']:.0f}), hnswlib {other['rss_bytes_per_entry']:.0f}")
    print("| efSearch | distill recall@10 | distill q/s | hnswlib recall@10 | hnswlib q/s | q/s ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for mine, theirs in zip(distill["sweep"], other["sweep"]):
        print(f"| {mine['ef']} | {mine['recall10']:.4f} | {mine['qps']:.0f} | "
              f"{theirs['recall10']:.4f} | {theirs['qps']:.0f} | {mine['qps'] / theirs['qps']:.2f} |")


if __name__ == "__main__":
    main()
