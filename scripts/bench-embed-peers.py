#!/usr/bin/env python3
"""distill's encoder, ONNX Runtime and sentence-transformers side by side, in one run.

The same all-MiniLM-L6-v2 weights (models/all-MiniLM-L6-v2/model.safetensors) run three ways on the same
queries and the same number of threads:
  - distill:    `distill-bench embed --json` (its own kernels, chosen from the CPU's features);
  - onnxruntime: the weights exported to ONNX with PyTorch (once, cached in --onnx-dir), mean pooling and
                 normalization inside the graph, fp32, tokenized by the Hugging Face fast tokenizer;
  - pytorch:    sentence-transformers' `encode`, as an application calls it.
Each measures what distill-bench does: batch 1 over the first --count queries one at a time (tokenization
included) after 50 warm-up queries, nearest-rank p50 and p99; then all queries in file order, 32 per call.
The three run in turn, --rounds times, in a rotating order; the table gives each one's median over the rounds
and the ratios of the medians, with the CPU model and the kernel set distill chose.

    pip install onnxruntime onnx onnxscript torch sentence-transformers transformers
    swift build -c release --product distill-bench
    scripts/bench-embed-peers.py [--bench .build/release/distill-bench] [--threads 1 2] [--rounds 3]
"""

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def cpu_model():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def read_queries(path):
    with open(path, newline="") as file:
        rows = csv.reader(file)
        next(rows)
        return [row[0] for row in rows]


def percentile(sorted_values, p):
    """Nearest rank, as distill-bench computes it."""
    index = min(len(sorted_values) - 1, max(0, int(np.ceil(p * len(sorted_values))) - 1))
    return sorted_values[index]


def measure(embed, texts, count, batch_size):
    for text in texts[:50]:
        embed([text])
    latencies = []
    for i in range(count):
        text = texts[i % len(texts)]
        started = time.perf_counter()
        embed([text])
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        embed(texts[start:start + batch_size])
    elapsed = time.perf_counter() - started
    return {"batch1_p50_ms": percentile(latencies, 0.5), "batch1_p99_ms": percentile(latencies, 0.99),
            "batch_per_s": len(texts) / elapsed}


def export_onnx(model_dir, path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        """BERT, the mean over real tokens, L2 normalization: sentence-transformers' pipeline in one graph."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            states = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    model = AutoModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    example = tokenizer(["an example", "a longer example sentence"], padding=True, return_tensors="pt")
    dynamic = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(
            Pooled(model), (example["input_ids"], example["attention_mask"], example["token_type_ids"]), path,
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "token_type_ids": dynamic,
                          "embedding": {0: "batch"}},
            opset_version=17, dynamo=False)


def onnxruntime_embedder(model_dir, onnx_path, threads):
    import onnxruntime
    from transformers import AutoTokenizer

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def embed(texts):
        tokens = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        return session.run(None, {name: tokens[name].astype(np.int64)
                                  for name in ("input_ids", "attention_mask", "token_type_ids")})[0]
    return embed, f"onnxruntime {onnxruntime.__version__}"


def pytorch_embedder(model_dir, threads):
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    torch.set_num_threads(threads)
    transformer = Transformer(model_dir, max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")

    def embed(texts):
        return model.encode(texts, batch_size=32, convert_to_numpy=True)
    return embed, f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}"


def check_agreement(model_dir, onnx_path, texts):
    """The three must compute the same function: cosine of their vectors on a few texts."""
    onnx, _ = onnxruntime_embedder(model_dir, onnx_path, 1)
    torch_embed, _ = pytorch_embedder(model_dir, 1)
    a, b = onnx(texts), torch_embed(texts)
    return float(np.min(np.sum(a * b, axis=1)))


def run_distill(bench, model_dir, queries, threads, count, batch_size):
    command = [bench, "embed", "--json", "--model", model_dir, "--queries", queries, "--threads", str(threads),
               "--count", str(count), "--batch-size", str(batch_size)]
    result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
    result["batch_per_s"] = result.pop(f"batch{batch_size}_per_s")
    return result


def run_peer(kind, model_dir, onnx_path, queries, threads, count, batch_size):
    """A peer in a child process of its own, so that each starts as cold as distill-bench and threads don't mix."""
    command = [sys.executable, __file__, "--peer", kind, "--model", model_dir, "--onnx-path", onnx_path,
               "--queries", queries, "--threads", str(threads), "--count", str(count), "--batch-size", str(batch_size)]
    return json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)


def peer_main(args):
    import torch

    torch.set_num_threads(args.threads[0])
    texts = read_queries(args.queries)
    if args.peer == "onnxruntime":
        embed, version = onnxruntime_embedder(args.model, args.onnx_path, args.threads[0])
    else:
        embed, version = pytorch_embedder(args.model, args.threads[0])
    result = measure(embed, texts, args.count, args.batch_size)
    result["version"] = version
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--bench", default=os.path.join(root, ".build/release/distill-bench"))
    parser.add_argument("--model", default=os.path.join(root, "models/all-MiniLM-L6-v2"))
    parser.add_argument("--queries", default=os.path.join(root, "../shared/data/banking77/test.csv"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--count", type=int, default=1000, help="queries timed one at a time")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, in rotating order; medians count")
    parser.add_argument("--onnx-dir", default=os.path.join(root, "var/onnx"), help="where the export is cached")
    parser.add_argument("--json", action="store_true", help="print every run as JSON as well")
    parser.add_argument("--peer", choices=["onnxruntime", "pytorch"], help=argparse.SUPPRESS)
    parser.add_argument("--onnx-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main(args)
        return

    os.makedirs(args.onnx_dir, exist_ok=True)
    onnx_path = os.path.join(args.onnx_dir, "all-MiniLM-L6-v2-pooled.onnx")
    if not os.path.exists(onnx_path):
        print(f"exporting {args.model} to {onnx_path}", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=args.onnx_dir) as scratch:
            partial = os.path.join(scratch, "model.onnx")
            export_onnx(args.model, partial)
            os.replace(partial, onnx_path)
    agreement = check_agreement(args.model, onnx_path, read_queries(args.queries)[:16])
    print(f"onnxruntime against pytorch: minimum cosine {agreement:.7f} over 16 queries", file=sys.stderr)

    kinds = ["distill", "onnxruntime", "pytorch"]
    runs = {(kind, threads): [] for kind in kinds for threads in args.threads}
    versions = {}
    started = datetime.datetime.now(datetime.timezone.utc)
    for round_index in range(args.rounds):
        for threads in args.threads:
            order = kinds[round_index % 3:] + kinds[:round_index % 3]
            for kind in order:
                if kind == "distill":
                    result = run_distill(args.bench, args.model, args.queries, threads, args.count, args.batch_size)
                    versions["distill"] = f"{result['kernels']} kernels"
                    distill_cpu = result["cpu"]
                else:
                    result = run_peer(kind, args.model, onnx_path, args.queries, threads, args.count, args.batch_size)
                    versions[kind] = result["version"]
                runs[(kind, threads)].append(result)
                print(f"round {round_index + 1}, {threads} thread(s), {kind}: p50 {result['batch1_p50_ms']:.2f} ms, "
                      f"batch {args.batch_size} {result['batch_per_s']:.0f}/s", file=sys.stderr)
    finished = datetime.datetime.now(datetime.timezone.utc)

    def median(kind, threads, key):
        return statistics.median(run[key] for run in runs[(kind, threads)])

    print(f"{started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC; CPU: {cpu_model()} (cpuid brand: {distill_cpu}), "
          f"{os.cpu_count()} logical CPUs, load average at the end {os.getloadavg()[0]:.1f}")
    print(f"distill: {versions['distill']}; {versions['onnxruntime']}; {versions['pytorch']}")
    print(f"{len(read_queries(args.queries))} queries, batch 1 over the first {args.count}, medians of "
          f"{args.rounds} rounds; ratios > 1 favour distill")
    print(f"| threads | batch-1 p50 ms: distill / ORT / PyTorch | p50 ORT÷distill | "
          f"batch-{args.batch_size}/s: distill / ORT / PyTorch | distill÷PyTorch | distill÷ORT |")
    print("|---:|---|---:|---|---:|---:|")
    for threads in args.threads:
        p50 = [median(kind, threads, "batch1_p50_ms") for kind in kinds]
        rate = [median(kind, threads, "batch_per_s") for kind in kinds]
        print(f"| {threads} | {p50[0]:.2f} / {p50[1]:.2f} / {p50[2]:.2f} | {p50[1] / p50[0]:.2f} | "
              f"{rate[0]:.0f} / {rate[1]:.0f} / {rate[2]:.0f} | {rate[0] / rate[2]:.2f} | {rate[0] / rate[1]:.2f} |")
    if args.json:
        print(json.dumps({f"{kind}/{threads}": value for (kind, threads), value in runs.items()}, indent=2))


if __name__ == "__main__":
    main()
