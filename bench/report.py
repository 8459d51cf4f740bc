"""The measured figures (docs/results.md), regenerated from the JSON files of `python -m bench
figures` runs, one folder per machine: Markdown tables, and with --plots the charts (bench/charts.py).

    python -m bench report bench/results/<run>...        # print the tables (Markdown)
    python -m bench report bench/results/<run>... --plots bench/results/plots --page docs/results.md

Every number between the page's `figures` markers, and every point of the charts, comes from these
files; nothing is typed by hand. Reading JSON and writing Markdown needs no ML library: this module
and the ones it imports load none (the measuring scripts import their tables from here).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.result_files import PROOF_POINTS, cpu_line
from common.host.paths import ROOT
from common.host.files import write_atomic
from common.run.results import spread_cell

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
# a real checkpoint; random weights (tables only: no agreement worth charting)
BENCHMARKS = ("benchmark-minilm.json", "benchmark.json", "benchmark-base-min-agreement.json")


def commit_shown(commit: str) -> str:
    return commit[:12] + (" with uncommitted changes" if commit.endswith("-dirty") else "")


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def machine(doc: dict) -> str:
    env = doc["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items()))
    return f"{cpu_line(doc)}, Python {env['python']}, {versions}"


def shown(command: list[str]) -> list[str]:
    """The command without the output and cache paths `python -m bench figures` added."""
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
    rows = []
    for doc in docs:
        reference, built = doc["runs"]
        command = " ".join(["python"] + [a if " " not in a else f"'{a}'" for a in shown(doc["command"])])
        timing = doc["timing"]
        rows.append([
            f"`{command}`", f"{built['backend']} {built['precision']}", f"{reference['accuracy']:.4f}",
            f"{built['accuracy']:.4f}", f"{built['agreement']:.4f}", f"{built['max_abs_logit_diff']:.2g}",
            spread_cell(reference["throughput"], ".0f"), spread_cell(built["throughput"], ".0f"),
            spread_cell(built["speedup"], ".2f"),
            " / ".join("-" if r["batch1_latency_ms"] is None else
                       f"{r['batch1_latency_ms']['p50']:.2f}" for r in (reference, built)),
            f"{timing['sentences']} of {timing['of']}, {timing['rounds']} rounds"])
    return markdown(["command", "built", "reference accuracy", "built accuracy", "agreement",
                     "max \\|Δlogit\\|", "reference sent/s", "built sent/s", "× reference (min–max)",
                     "batch-1 ms, reference / built", "timed"], rows)


def trial_table(docs: list[dict]) -> str:
    """Every candidate `auto` timed, per proof point that ran a trial."""
    rows = []
    for doc in docs:
        choice = doc.get("choice") or {}
        if not choice.get("trial"):
            continue
        command = " ".join(["python"] + shown(doc["command"]))
        for c in choice["candidates"]:
            if "dropped" in c:  # too slow to build or to time against the reference
                speed = (f"not timed: {c['first_pass_sent_per_s']:.1f} sent/s in its first pass"
                         if "first_pass_sent_per_s" in c else f"not timed: {c['dropped']}")
                rows.append([f"`{command}`", c["candidate"], speed, "-", ""])
                continue
            speed = {"median": c["sent_per_s"], "min": c["sent_per_s_min"], "max": c["sent_per_s_max"]}
            chosen = "**yes**" if c["candidate"] == choice["chosen"] else \
                "compared (float), never chosen" if c.get("compared_only") else ""
            rows.append([f"`{command}`", c["candidate"], spread_cell(speed, ".0f"),
                         f"{c['agreement']:.4f}", chosen])
        rows.append(["", f"trial: {choice['trial_sentences']} sentences, {choice['rounds']} rounds, "
                         f"{choice['trial_seconds']:.1f} s", "", "", ""])
    return markdown(["command", "candidate", "trial sent/s (min–max)",
                     "agreement on the trial sentences", "chosen"], rows) if rows else ""


def trial_cost_line(doc: dict) -> str:
    first, second = doc["runs"]
    return (f"`python -m bench trial-cost` (`bert_base.py` on a BERT-base-shaped checkpoint, random weights, "
            f"872 sentences, a fresh cache): first run {first['wall_seconds']:.0f} s wall of which "
            f"the trial {first['trial_seconds']:.1f} s ({first['trial_seconds'] / first['wall_seconds']:.1%}; "
            f"chose {first['choice']['chosen']}, {first['speedup']['median']:.2f}× the reference); "
            f"second run {second['wall_seconds']:.0f} s, decision "
            f"{'from the cache, no trial' if second['choice']['cached'] else 'measured again'}.")


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def benchmark_row(row: dict) -> dict:
    """A row of the speed experiment's JSON (bench/benchmark.py): run_metrics' entry with the benchmark's fields. Files made
    before the benchmark used run_metrics hold the same figures under other keys."""
    if "ratio_to_eager" not in row:
        return row
    (low, high), ratio = row["throughput_range"], row["ratio_to_eager"]
    return {**row, "accuracy": None, "agreement": None,
            "throughput": {"median": row["throughput"], "min": low, "max": high},
            "speedup": None if row["runner"] == "pytorch-eager" or ratio is None else
            {"median": ratio, "min": row["ratio_range"][0], "max": row["ratio_range"][1]}}


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(row) + " |" for row in rows])


def rows_table(rows: list[dict]) -> str:
    """bench/benchmark.py's rows."""
    return markdown(
        ["model", "runner", "accuracy", "agreement", "sentences/s (min–max)", "× eager (min–max)",
         "GFLOP/s", "÷ torch's GEMM rate at its precision"],
        [[Path(r["model"]).name, r["runner"], _cell(r["accuracy"], ".4f"),
          _cell(r["agreement"], ".4f"), spread_cell(r["throughput"], ".0f"),
          spread_cell(r["speedup"], ".2f"), f"{r['gflops']:.0f}",
          f"{100 * r['gemm_share']:.0f}% of {r['precision']}" if r["gemm_share"] else "-"]
         for r in map(benchmark_row, rows)])


def variants_table(rows: list[dict]) -> str:
    """bench/int8_variants.py's rows; with --frontier, what --min-agreement kept in float and the
    validation slice's agreement that decided it."""
    searched = any(r.get("accuracy_control") for r in rows)
    head = ["variant", "precision", "accuracy", "Δ points", "agreement", "× PyTorch fp32 (min–max)",
            "build s", "MB"] + (["kept in float", "slice agreement"] if searched else [])
    body = []
    for r in rows:
        control = r.get("accuracy_control") or {}
        body.append([r["variant"], r.get("precision") or "-", f"{r['accuracy']:.4f}",
                     f"{r['delta_points']:+.2f}", f"{r['agreement']:.4f}",
                     spread_cell(r["speedup"], ".2f"), _cell(r["build_seconds"], ".1f"),
                     _cell(r["megabytes"], ".1f")] + ([
            ", ".join(control["kept_in_float"]) or "nothing" if control else "-",
            slice_cell(control) if control else "-"] if searched else []))
    return markdown(head, body)


def slice_cell(control: dict) -> str:
    """Plain INT8's agreement on the slice → the built one's, and the lower bound that decided it
    (files made before the 95% rule have none: their point estimate decided); where distillation
    was tried, its agreement."""
    distilled = control.get("distillation")
    start = control.get("plain_int8")
    cell = (f"{start['agreement']:.4f} → " if start else "distilled: ") + f"{control['agreement']:.4f}"
    bound = control.get("agreement_lower_bound")
    cell = cell if bound is None else f"{cell} (≥ {bound:.4f})"
    if distilled and start:
        cell += f"; distilled {distilled['agreement']:.4f} ({distilled['seconds']:.0f} s)"
    return cell


def gaps_table(doc: dict) -> str:
    """bench/layer_gaps.py's rows, under the line that says what they were measured on."""
    within = doc["evaluated_within_logit"]
    return "\n".join([
        f"{Path(doc['model']).name}, INT8 with the fp32 remainder, scored on a "
        f"{doc['validation_sentences']}-sentence validation slice; {within['0.1']} of the "
        f"{doc['evaluated_sentences']} evaluated sentences lie within 0.1 logit of the decision "
        f"boundary ({within['0.3']} within 0.3).", "",
        markdown(["in float", "layer", "slice logit gap (MSE)", "slice agreement"],
                 [[r["in_float"], r["layer"], f"{r['logit_mse']:.4f}", f"{r['agreement']:.4f}"]
                  for r in doc["rows"]])])


def buckets_table(rows: list[dict]) -> str:
    """bench/ov_buckets.py's rows."""
    return markdown(
        ["build", "width bucket", "widths", "first pass, sent/s", "later passes (median), sent/s"],
        [[r["build"], str(r["bucket"]), str(r["widths"]), f"{r['first_pass']:.0f}",
          f"{r['later_passes']:.0f}"] for r in rows])


def benchmark_table(doc: dict) -> str:
    rates = ", ".join(f"{p} {r:.0f}" if r else f"{p} -" for p, r in doc["gemm_rates"].items())
    weights = (f"checkpoint {Path(doc['model']).name}" if doc.get("model") else
               "random weights (speed only)")
    measured = f"Project commit `{commit_shown(doc['git_commit'])}`. " if "git_commit" in doc else ""
    lines = [f"{measured}GEMM 2048³ measured in the same run (GFLOP/s; GOP/s for int8): {rates}. Sentences: "
             f"{doc['sentences']}, {weights}, batch {doc['batch_size']}, median of "
             f"{doc['rounds']} rounds.", "",
             rows_table(doc["rows"])]
    return "\n".join(lines)


def is_results(folder: Path) -> bool:
    """A results folder has proof-point files; another (bench/results/plots, given by a glob) is
    passed over, saying so."""
    if any((folder / name).is_file() for name in PROOF_POINTS):
        return True
    print(f"{folder}: no proof-point JSON files; passed over", file=sys.stderr)
    return False


def proof_points(folder: Path) -> dict[str, dict]:
    """The folder's proof-point files by name, in PROOF_POINTS order."""
    docs = {name: doc for name, doc in ((n, _load(folder, n)) for n in PROOF_POINTS) if doc}
    if not docs:
        raise SystemExit(f"no proof-point JSON files in {folder}")
    return docs


def draw(folders: list[Path], plots: Path) -> dict[str, Path]:
    """One chart per folder (and one across them, given several), from the JSON files only:
    {folder name, or "cpus"} -> chart file."""
    from bench import charts  # matplotlib: only when charts are asked for

    drawn = {}
    for folder in folders:
        docs = proof_points(folder)
        points = [charts.proof_point(name, doc) for name, doc in docs.items()]
        benchmarks = [doc for doc in (_load(folder, name) for name in BENCHMARKS) if doc]
        for doc in benchmarks:
            points += charts.benchmark_points(doc)
        measured = ", ".join(["the proof points"] + [
            f"python -m bench speed on {Path(doc['model']).name}" for doc in benchmarks
            if doc.get("model")])
        drawn[folder.name] = plots / f"{folder.name}.png"
        charts.cpu_chart(points, cpu_line(next(iter(docs.values()))),
                         f"{folder.name}: {measured}", drawn[folder.name])
        frontiers = {backend: doc for backend, doc in (
            (b, _load(folder, f"frontier-{b}.json")) for b in ("openvino", "onnxruntime")) if doc}
        if frontiers:
            drawn[f"{folder.name}-frontier"] = plots / f"{folder.name}-frontier.png"
            charts.frontier_chart(frontiers, f"{folder.name}: what --min-agreement trades\n"
                                  f"{cpu_line(next(iter(docs.values())))}",
                                  drawn[f"{folder.name}-frontier"])
    if len(folders) > 1:
        drawn["cpus"] = plots / "cpus.png"
        charts.cross_cpu_chart([(f.name, proof_points(f)) for f in folders], drawn["cpus"])
    return drawn


def relative(path: Path, base: Path = ROOT) -> str:
    """The path as a page in `base` names it (the repository's root by default)."""
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def image(path: Path, caption: str, base: Path = ROOT) -> str:
    return f"![{caption}]({relative(path, base)})"


def render(folder: Path, drawn: dict[str, Path], base: Path = ROOT) -> str:
    """The folder's section of the results page (in `base`); `drawn`: draw()'s charts, if any."""
    chart, frontier_chart = drawn.get(folder.name), drawn.get(f"{folder.name}-frontier")
    docs = list(proof_points(folder).values())
    first = docs[0]
    commits = list(dict.fromkeys(commit_shown(doc["git_commit"]) for doc in docs))
    commit = (f"project commit `{commits[0]}`" if len(commits) == 1 else
              "project commits " + ", ".join(f"`{c}`" for c in commits) + " (each file records its own)")
    parts = [f"### {first['environment']['cpu']} ({folder.name})", "",
             f"Measured by `python -m bench figures` on {first['start_time'][:10]}, {commit}, "
             f"files in `{relative(folder)}`. Machine: {machine(first)}.", ""]
    if chart is not None:
        parts += [image(chart, f"every runner measured on {folder.name}: speed against "
                               "agreement", base), ""]
    parts += ["#### The proof points", "", proof_points_table(docs)]
    trials = trial_table(docs)
    if trials:
        parts += ["", "#### What `auto` measured (the trial of each proof point above)", "", trials]
    cost = _load(folder, "trial-cost.json")
    if cost:
        parts += ["", trial_cost_line(cost)]
    for name in BENCHMARKS:
        bench = _load(folder, name)
        if bench:
            parts += ["", f"#### Every runner against PyTorch eager (`python -m bench speed`, {name})",
                      "", benchmark_table(bench)]
    for kind, title, flag in (("variants", "INT8 recipes", ""),
                              ("frontier", "What --min-agreement trades", " --frontier")):
        if kind == "frontier" and frontier_chart:
            parts += ["", image(frontier_chart, f"what --min-agreement trades on {folder.name}",
                                base)]
        for backend in ("openvino", "onnxruntime"):
            variants = _load(folder, f"{kind}-{backend}.json")
            if variants:
                slice_ = (f", a {variants['validation_samples']}-sentence validation slice"
                          if variants.get("validation_samples") else "")
                controls = [r["accuracy_control"] for r in variants["rows"] if r.get("accuracy_control")]
                if controls:
                    slice_ += (" (a setting is reached where the slice shows it with 95% confidence: "
                               "the lower bound in brackets)" if "rule" in controls[0] else
                               " (made before the 95% rule: a setting was reached where the "
                               "slice's agreement touched it)")
                parts += ["", f"#### {title} on {backend} (`python -m bench int8-variants --backend "
                              f"{backend}{flag}`)", "",
                          f"{Path(variants['model']).name}, {variants['calibration_samples']} "
                          f"calibration samples (seed {variants['seed']}){slice_}, median of "
                          f"{variants['rounds']} rounds.", "", variants_table(variants["rows"])]
    gaps = _load(folder, "layer-gaps.json")
    if gaps:
        parts += ["", "#### Where INT8's error is (`python -m bench layer-gaps`)", "", gaps_table(gaps)]
    buckets = _load(folder, "ov-buckets.json")
    if buckets:
        parts += ["", "#### OpenVINO: padding widths to buckets (`python -m bench ov-buckets`)", "",
                  buckets_table(buckets["rows"])]
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+", help="bench/results/<run> folders")
    p.add_argument("--page", type=Path, help=f"rewrite the page's block between {BEGIN} and {END}")
    p.add_argument("--plots", type=Path, metavar="DIR",
                   help="draw the charts there (PNG), and show them in the page's block")
    args = p.parse_args(argv)
    folders = [folder.resolve() for folder in args.folders if is_results(folder)]
    if not folders:
        raise SystemExit("none of the folders holds proof-point JSON files")
    drawn = draw(folders, args.plots.resolve()) if args.plots else {}
    base = args.page.resolve().parent if args.page else ROOT
    sections = [render(folder, drawn, base) for folder in folders]
    if "cpus" in drawn:
        sections.insert(0, image(drawn["cpus"], "the proof points' speed-ups on each CPU", base))
    text = "\n\n".join(sections)
    if not args.page:
        print(text)
        return 0
    page = args.page.read_text()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{args.page} has no {BEGIN} ... {END} block")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    write_atomic(args.page, f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0
