"""The README's measured figures, regenerated from the JSON files of `bench/figures.py` runs, one
folder per machine.

    python bench/report.py bench/results/<run>...              # print the tables (Markdown)
    python bench/report.py bench/results/<run>... --readme README.md   # rewrite README's block

Every number between README's `figures` markers comes from these files; nothing is typed by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchmark import rows_table  # noqa: E402
from bench.int8_variants import variants_table  # noqa: E402
from bench.ov_buckets import table as bucket_table  # noqa: E402
from common.files import write_atomic  # noqa: E402
from common.report import spread_cell  # noqa: E402

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
PROOF_POINTS = ("tiny.json", "base.json", "base-fp32.json", "quantize.json", "quantize-ort.json",
                "quantize-int8-fp32.json")


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def machine(doc: dict) -> str:
    env = doc["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items()))
    return (f"{env['cpu']} ({', '.join(env['cpu_flags']) or 'no AVX2/AVX-512/AMX'}), "
            f"{env['cpu_count']} threads, Python {env['python']}, {versions}")


def shown(command: list[str]) -> list[str]:
    """The command without the output and cache paths bench/figures.py added."""
    kept, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg in ("--json", "--cache-dir"):
            skip = True
        else:
            kept.append(arg)
    return kept


def proof_points_table(docs: list[dict]) -> str:
    lines = ["| command | built | reference accuracy | built accuracy | agreement | max \\|Δlogit\\| "
             "| reference sent/s | built sent/s | × reference (min–max) | batch-1 ms, reference / built "
             "| timed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for doc in docs:
        reference, built = doc["runs"]
        command = " ".join(["python"] + [a if " " not in a else f"'{a}'" for a in shown(doc["command"])])
        timing = doc["timing"]
        timed = (f"{timing['sentences']} of {timing['of']}, {timing['rounds']} rounds")
        batch1 = " / ".join("-" if r["batch1_latency_ms"] is None else
                            f"{r['batch1_latency_ms']['p50']:.2f}" for r in (reference, built))
        lines.append(
            f"| `{command}` | {built['backend']} {built['precision']} | {reference['accuracy']:.4f} "
            f"| {built['accuracy']:.4f} | {built['agreement']:.4f} | {built['max_abs_logit_diff']:.2g} "
            f"| {spread_cell(reference['throughput'], '.0f')} | {spread_cell(built['throughput'], '.0f')} "
            f"| {spread_cell(built['speedup'], '.2f')} | {batch1} | {timed} |")
    return "\n".join(lines)


def trial_table(docs: list[dict]) -> str:
    """Every candidate `auto` timed, per proof point that ran a trial."""
    lines = ["| command | candidate | trial sent/s (min–max) | agreement on the trial sentences "
             "| chosen |", "|---|---|---|---|---|"]
    for doc in docs:
        choice = doc.get("choice") or {}
        if not choice.get("trial"):
            continue
        command = " ".join(["python"] + shown(doc["command"]))
        for c in choice["candidates"]:
            speed = {"median": c["sent_per_s"], "min": c["sent_per_s_min"], "max": c["sent_per_s_max"]}
            lines.append(f"| `{command}` | {c['candidate']} | {spread_cell(speed, '.0f')} "
                         f"| {c['agreement']:.4f} | {'**yes**' if c['candidate'] == choice['chosen'] else ''} |")
        lines.append(f"| | trial: {choice['trial_sentences']} sentences, {choice['rounds']} rounds, "
                     f"{choice['trial_seconds']:.1f} s | | | |")
    return "\n".join(lines) if len(lines) > 2 else ""


def trial_cost_line(doc: dict) -> str:
    first, second = doc["runs"]
    return (f"`bench/trial_cost.py` (`bert_base.py` on a BERT-base-shaped checkpoint, random weights, "
            f"872 sentences, a fresh cache): first run {first['wall_seconds']:.0f} s wall of which "
            f"the trial {first['trial_seconds']:.1f} s ({first['trial_seconds'] / first['wall_seconds']:.1%}; "
            f"chose {first['choice']['chosen']}, {first['speedup']['median']:.2f}× the reference); "
            f"second run {second['wall_seconds']:.0f} s, decision "
            f"{'from the cache, no trial' if second['choice']['cached'] else 'measured again'}.")


def benchmark_table(doc: dict) -> str:
    rates = ", ".join(f"{p} {r:.0f}" if r else f"{p} -" for p, r in doc["gemm_rates"].items())
    lines = [f"GEMM 2048³ measured in the same run (GFLOP/s; GOP/s for int8): {rates}. Sentences: "
             f"{doc['sentences']}, batch {doc['batch_size']}, median of {doc['rounds']} rounds.", "",
             rows_table(doc["rows"])]
    return "\n".join(lines)


def render(folder: Path) -> str:
    docs = [doc for doc in (_load(folder, name) for name in PROOF_POINTS) if doc]
    if not docs:
        raise SystemExit(f"no proof-point JSON files in {folder}")
    first = docs[0]
    commit = first["git_commit"]
    commit = commit[:12] + (" with uncommitted changes" if commit.endswith("-dirty") else "")
    parts = [f"### {first['environment']['cpu']} ({folder.name})", "",
             f"Measured by `python bench/figures.py` on {first['start_time'][:10]}, project commit "
             f"`{commit}`, files in `{folder.relative_to(ROOT)}`. Machine: "
             f"{machine(first)}.", "", "#### The proof points", "", proof_points_table(docs)]
    trials = trial_table(docs)
    if trials:
        parts += ["", "#### What `auto` measured (the trial of each proof point above)", "", trials]
    cost = _load(folder, "trial-cost.json")
    if cost:
        parts += ["", trial_cost_line(cost)]
    bench = _load(folder, "benchmark.json")
    if bench:
        parts += ["", "#### Every runner against PyTorch eager (`bench/benchmark.py`)", "",
                  benchmark_table(bench)]
    for backend in ("openvino", "onnxruntime"):
        variants = _load(folder, f"variants-{backend}.json")
        if variants:
            parts += ["", f"#### INT8 recipes on {backend} (`bench/int8_variants.py --backend "
                          f"{backend}`)", "",
                      f"{Path(variants['model']).name}, {variants['calibration_samples']} calibration "
                      f"samples (seed {variants['seed']}), median of {variants['rounds']} rounds.", "",
                      variants_table(variants["rows"])]
    buckets = _load(folder, "ov-buckets.json")
    if buckets:
        parts += ["", "#### OpenVINO: padding widths to buckets (`bench/ov_buckets.py`)", "",
                  bucket_table(buckets["rows"])]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+", help="bench/results/<run> folders")
    p.add_argument("--readme", type=Path, help=f"rewrite the block between {BEGIN} and {END}")
    args = p.parse_args(argv)
    text = "\n\n".join(render(folder.resolve()) for folder in args.folders)
    if not args.readme:
        print(text)
        return 0
    readme = args.readme.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{args.readme} has no {BEGIN} ... {END} block")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    write_atomic(args.readme, f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
