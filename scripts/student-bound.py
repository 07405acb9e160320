#!/usr/bin/env python3
"""How few teacher calls any student of this kind could need on the GPT-4 replay: an upper bound.

An idealized student replaces distill's in a simulation of `distill-bench replay --gpt4-csv`: a softmax
regression over the same MiniLM embeddings (scikit-learn's, at its best C here), retrained every 250
queries on every answer the teacher gave so far (no holdout), and serving in each block of 250 new
queries exactly the share it can serve at the target agreement, chosen by an oracle that knows the
teacher's answers. No audits, no novelty abstentions, no cache explorations; the replay's repeats of
earlier queries are free. Whatever distill's student does, it cannot beat this by much, so the teacher
share printed is what the replay's goal has to be measured against (docs/benchmarks.md, Replay).

    pip install sentence-transformers scikit-learn
    scripts/student-bound.py [--target 0.95] [--seeds 1 2 3]

The embeddings are cached in var/student-bound/.
"""
import argparse
import csv
import pathlib

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = pathlib.Path(__file__).resolve().parent.parent
GPT4 = ROOT.parent / "shared/data/banking77/teacher_gpt4.csv"
MODEL = ROOT / "models/all-MiniLM-L6-v2"
CACHE = ROOT / "var/student-bound"
# The replay's stream of the GPT-4 file: 4,081 unique queries and 1,755 repeats (seed 1).
REPLAY_REQUESTS = 5836
FIRST_TRAINING = 500  # the distiller's first run is due at 500 answers
BLOCK = 250  # and the next every 250


def embeddings():
    """The file's queries (MiniLM, normalized, as distilld embeds them) and the teacher's answers."""
    rows = list(csv.DictReader(GPT4.open()))
    answers = np.array([row["teacher"] for row in rows])
    cached = CACHE / "gpt4.npy"
    if cached.exists():
        return np.load(cached), answers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(MODEL), device="cpu")
    vectors = model.encode([row["text"] for row in rows], batch_size=64, normalize_embeddings=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors, answers


def simulate(vectors, answers, target, seed):
    """Teacher calls, and the student's answers and agreement, over the file's queries in a seeded order."""
    order = np.random.default_rng(seed).permutation(len(answers))
    learned = list(order[:FIRST_TRAINING])
    served = agreed = 0
    for start in range(FIRST_TRAINING, len(order), BLOCK):
        block = order[start : start + BLOCK]
        model = LogisticRegression(C=10, max_iter=2000).fit(vectors[learned], answers[learned])
        probabilities = model.predict_proba(vectors[block])
        correct = model.classes_[probabilities.argmax(1)] == answers[block]
        ranked = np.argsort(-probabilities.max(1))
        agreement = np.cumsum(correct[ranked]) / np.arange(1, len(block) + 1)
        meeting = np.flatnonzero(agreement >= target)
        accepted = meeting.max() + 1 if len(meeting) else 0
        served += accepted
        agreed += correct[ranked[:accepted]].sum()
        learned += list(block[ranked[accepted:]])
    return len(learned), served, agreed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.95, help="the student's target agreement")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    arguments = parser.parse_args()
    vectors, answers = embeddings()
    for seed in arguments.seeds:
        teacher, served, agreed = simulate(vectors, answers, arguments.target, seed)
        print(
            f"seed {seed}: teacher {teacher} of {len(answers)} unique queries, "
            f"{teacher / REPLAY_REQUESTS:.1%} of the replay's {REPLAY_REQUESTS} requests; "
            f"student {served} at {agreed / max(served, 1):.1%}"
        )


if __name__ == "__main__":
    main()
