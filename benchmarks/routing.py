"""Routing: how much of the strong model's quality a router keeps for how many strong calls.

Data: RouteLLM's per-prompt correctness of a strong model (gpt-4-1106-preview) and a weak
one (Mixtral-8x7B) on GSM8K and MMLU, with the contaminated prompts dropped. Each prompt
gets a score (higher: send to the strong model) from relaybaton's learned router
(``relaybaton.actors.routing._bandit.LearnedRouter``), fed the graded outcomes of the training
folds only (5-fold cross-validation: no prompt is scored by a router that saw its grade).
Features come from ``HeuristicClassifier`` (size in tokens, quantities written as words,
digits of the largest number, as at run time), and the domain is the MMLU subject (GSM8K:
one domain, "math"). The router pools grades by (domain, size band) and orders calls
within a band by a ridge slope on those numeric features, and blends that with a prior on
size alone by a trust weight it learns from its own training grades (``trust`` in the
report: strong, weak per fold). Each fold's held-out gains are standardized by the mean and
spread of the same router's gains on its training prompts before the folds are pooled into
one ranking (``apgr_raw_pooled`` is the figure without that step); ``--shuffles N`` also
reports APGR for N shuffles of the folds.

Metrics, as RouteLLM defines them: sending the top-k scored prompts to the strong model
gives a quality; PGR = (quality - weak) / (strong - weak); APGR is the area under PGR over
the share of strong calls (ties in score are split evenly, i.e. averaged over random
tie-breaking); CPT(50%) is the smallest share of strong calls reaching PGR 0.5. 95%
intervals: 1,000 bootstrap resamples of the prompts (scores held fixed). The baseline is
"send long prompts to the strong model" (score = length). ``cost_saved_at_95`` is 1 -
the share of strong calls needed to keep 95% of the strong model's quality.
``decision_us`` is the time of one classify + route decision (Router.choose with the
learned policy), measured against a same-run empty loop.

Run: ``python benchmarks/routing.py [--data DIR] [--json] [--scores FILE] [--shuffles N]``
(``--data`` defaults to ``$RELAYBATON_DATA``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import msgspec

from relaybaton.actors.routing import (
    Candidate,
    HeuristicClassifier,
    LearnedRouter,
    Router,
    TaskFeatures,
)
from relaybaton.adapters import ModelRequest, SimulatedModel, UserMessage

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
Row = tuple[str, str, bool, bool]  # prompt, domain, strong correct, weak correct

csv.field_size_limit(10**8)


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    out: set[str] = set()
    for line in path.read_text().splitlines():
        if line.strip():
            out.add(json.loads(line)["eval_prompt"].strip())
    return out


def load(data: Path, dataset: str) -> list[Row]:
    base = data / "routellm" / "routellm" / "evals" / dataset
    drop = _contaminated(base / "contaminated_prompts.jsonl")
    files = (
        sorted((base / "responses").glob("*.csv"))
        if dataset == "mmlu"
        else [base / "gsm8k_responses.csv"]
    )
    rows: list[Row] = []
    for file in files:
        domain = file.stem.removeprefix("mmlu_") if dataset == "mmlu" else "math"
        with file.open(newline="") as handle:
            for record in csv.DictReader(handle):
                prompt = record["prompt"]
                if prompt.strip() in drop:
                    continue
                rows.append((prompt, domain, record[STRONG] == "True", record[WEAK] == "True"))
    return rows


def features(classifier: HeuristicClassifier, row: Row) -> TaskFeatures:
    text = row[0]
    return TaskFeatures(
        complexity=classifier.complexity(text),
        domain=row[1],
        expected_tokens=len(text) // 4,
        number_words=classifier.number_words(text),
        magnitude=classifier.magnitude(text),
    )


class Scores(msgspec.Struct, frozen=True, kw_only=True):
    """Held-out scores of every prompt, and what the routers behind them learned."""

    standardized: list[float]
    raw: list[float]
    trust: list[float]  # per fold: the strong and the weak candidate's trust in the features


def learned_scores(rows: list[Row], folds: int = 5, seed: int = 0) -> Scores:
    """Held-out scores: expected gain of the strong model, learned on the other folds.

    Each fold's router gives gains on its own scale (its intercepts and slopes differ a
    little from the next fold's), and pooling raw gains from five routers into one ranking
    mixes those scales: a router that ranks exactly like the length heuristic inside every
    fold scored 0.589 pooled against the heuristic's 0.598 on GSM8K. So each held-out gain is
    also standardized by the mean and spread of its router's gains on its own training
    prompts, which uses no held-out grade and keeps the order within a fold.
    """
    classifier = HeuristicClassifier()
    feats = [features(classifier, r) for r in rows]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    raw = [0.0] * len(rows)
    standardized = [0.0] * len(rows)
    trust: list[float] = []
    for fold in range(folds):
        test = set(order[fold::folds])
        train = [i for i in order if i not in test]
        router = LearnedRouter(decay=1.0, prior_weight=8.0, explore=0.0)
        for i in train:
            router.record(feats[i], "strong", float(rows[i][2]))
            router.record(feats[i], "weak", float(rows[i][3]))
        trust += (router.trust("strong"), router.trust("weak"))
        seen = [router.gain(feats[i], "strong", "weak") for i in train]
        mean, spread = statistics.fmean(seen), statistics.pstdev(seen) or 1.0
        for i in test:
            raw[i] = router.gain(feats[i], "strong", "weak")
            standardized[i] = (raw[i] - mean) / spread
    return Scores(standardized=standardized, raw=raw, trust=trust)


def curve(rows: list[Row], scores: list[float], index: list[int]) -> list[tuple[float, float]]:
    """(share of strong calls, quality) at every tie-group boundary, weak-only first."""
    n = len(index)
    by_score: dict[float, list[int]] = {}
    for i in index:
        by_score.setdefault(scores[i], []).append(i)
    quality = sum(rows[i][3] for i in index) / n
    points = [(0.0, quality)]
    sent = 0
    for score in sorted(by_score, reverse=True):
        group = by_score[score]
        quality += sum(rows[i][2] - rows[i][3] for i in group) / n
        sent += len(group)
        points.append((sent / n, quality))
    return points


def metrics(rows: list[Row], scores: list[float], index: list[int]) -> dict[str, float]:
    points = curve(rows, scores, index)
    weak, strong = points[0][1], points[-1][1]
    gap = strong - weak or 1e-12
    apgr = 0.0
    for (x0, q0), (x1, q1) in itertools.pairwise(points):
        apgr += (x1 - x0) * ((q0 + q1) / 2 - weak) / gap  # linear within a tie group
    return {
        "apgr": apgr,
        "cpt50": _share_for(points, weak + 0.5 * gap),
        "share_for_95pct_quality": _share_for(points, 0.95 * strong),
    }


def _share_for(points: list[tuple[float, float]], target: float) -> float:
    for (x0, q0), (x1, q1) in itertools.pairwise(points):
        if q1 >= target:
            return x0 if q0 >= target else x0 + (x1 - x0) * (target - q0) / (q1 - q0)
    return 1.0


def evaluate(rows: list[Row], scores: list[float], boot: int, seed: int) -> dict[str, object]:
    everything = list(range(len(rows)))
    point = metrics(rows, scores, everything)
    rng = random.Random(seed)
    samples = sorted(
        metrics(rows, scores, [rng.randrange(len(rows)) for _ in everything])["apgr"]
        for _ in range(boot)
    )
    return {
        "apgr": round(point["apgr"], 4),
        "apgr_ci": [round(samples[int(0.025 * boot)], 4), round(samples[int(0.975 * boot) - 1], 4)],
        "cpt50": round(point["cpt50"], 4),
        "cost_saved_at_95": round(1 - point["share_for_95pct_quality"], 4),
        "prompts": len(rows),
    }


def decision_us(rows: list[Row]) -> float:
    classifier = HeuristicClassifier()
    learned = LearnedRouter(explore=0.0)
    for row in rows[:2000]:
        learned.record(features(classifier, row), "strong", float(row[2]))
        learned.record(features(classifier, row), "weak", float(row[3]))
    router = Router(
        [
            Candidate(SimulatedModel("simulated:weak"), name="weak", price_in_per_1k=0.0006),
            Candidate(SimulatedModel("simulated:strong"), name="strong", price_in_per_1k=0.01),
        ],
        learned=learned,
        quality_target=0.8,
    )
    requests = [ModelRequest(messages=(UserMessage(text=r[0]),)) for r in rows[:2000]]
    start = time.perf_counter()
    for request, row in zip(requests, rows, strict=False):
        f = classifier.classify(request)
        router.choose(msgspec.structs.replace(f, domain=row[1]))
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    for _request, _row in zip(requests, rows, strict=False):
        pass
    empty = time.perf_counter() - start
    return (elapsed - empty) / len(requests) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("RELAYBATON_DATA"),
        help="the folder that holds routellm/ (default: $RELAYBATON_DATA)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--shuffles", type=int, default=1, help="also report APGR over this many CV shuffles"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scores", type=Path, help="write dataset,prompt,score CSV here")
    args = parser.parse_args(argv)
    if args.data is None or not (args.data / "routellm").is_dir():
        print(
            f"routing: no RouteLLM outcomes under {args.data or 'any folder'}; "
            "pass --data DIR or set RELAYBATON_DATA (the folder that holds routellm/)",
            file=sys.stderr,
        )
        return 2
    report: dict[str, object] = {"length_baseline": {}}
    written: list[tuple[str, str, float]] = []
    for dataset in ("gsm8k", "mmlu"):
        rows = load(args.data, dataset)
        scores = learned_scores(rows)
        ours = evaluate(rows, scores.standardized, args.bootstrap, 1)
        everything = list(range(len(rows)))
        ours["apgr_raw_pooled"] = round(metrics(rows, scores.raw, everything)["apgr"], 4)
        ours["trust"] = [round(t, 2) for t in scores.trust]
        if args.shuffles > 1:
            ours["apgr_by_shuffle"] = [
                round(
                    metrics(rows, learned_scores(rows, seed=seed).standardized, everything)["apgr"],
                    4,
                )
                for seed in range(args.shuffles)
            ]
        report[dataset] = ours
        lengths = [float(len(r[0])) for r in rows]
        report["length_baseline"][dataset] = evaluate(rows, lengths, args.bootstrap, 1)  # type: ignore[index]
        written.extend((dataset, r[0], s) for r, s in zip(rows, scores.standardized, strict=True))
    report["decision_us"] = round(decision_us(load(args.data, "mmlu")), 2)
    if args.scores:
        with args.scores.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["dataset", "prompt", "score"])
            writer.writerows(written)
    if args.json:
        print(json.dumps(report))
        return 0
    for dataset in ("gsm8k", "mmlu"):
        ours = report[dataset]
        base = report["length_baseline"][dataset]  # type: ignore[index]
        print(f"{dataset}: learned {ours}\n{'':>{len(dataset)}}  length  {base}")
    print(f"decision: {report['decision_us']} µs per call (classify + route)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
