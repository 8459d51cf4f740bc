"""Charts of the measured results, drawn from the JSON files only (matplotlib, headless, the same
bytes for the same files): per results folder, every runner's speed against its agreement with the
PyTorch reference; where measured, what --min-agreement trades (bench/int8_variants.py --frontier);
across folders, the proof points' speed-ups side by side per CPU.

The figures are the ones the results page's tables print from the same fields, so chart and table agree.
A value a chart cannot honestly show (a speed-up that is not a positive number, an agreement or an
accuracy outside [0, 1]) is refused, not drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import matplotlib

from bench.result_files import PROOF_POINTS, cpu_line

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

PNG = {"dpi": 110, "metadata": {"Software": None}}  # no version stamp: same files, same bytes


@dataclass(frozen=True)
class Point:
    """One runner on a chart."""
    label: str
    speedup: float  # × PyTorch eager fp32, median of the rounds
    agreement: float  # share of sentences where it predicts what the reference predicts
    accuracy: Optional[float]
    kind: str  # "benchmark" (bench/benchmark.py on a checkpoint) or "proof point"
    chosen: bool = False  # the proof point's `auto` chose it by a measured trial

    def __post_init__(self) -> None:
        if not (isinstance(self.speedup, (int, float)) and math.isfinite(self.speedup)
                and self.speedup > 0):
            raise ValueError(f"{self.label}: speed-up {self.speedup!r} is not a positive number; "
                             "not drawn")
        for name in ("agreement", "accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{self.label}: {name} {value!r} is outside [0, 1]; not drawn")


def proof_point(name: str, doc: dict) -> Point:
    """The built model of a proof point's JSON."""
    built = doc["runs"][1]
    choice = doc.get("choice") or {}
    control = (built.get("build_facts") or {}).get("accuracy_control")
    flag = f" --min-agreement {control['min_agreement']}" if control else ""
    return Point(label=f"{PROOF_POINTS.get(name, name)}{flag}: {built['backend']} {built['precision']}",
                 speedup=built["speedup"]["median"], agreement=built["agreement"],
                 accuracy=built["accuracy"], kind="proof point", chosen=bool(choice.get("trial")))


def benchmark_points(doc: dict) -> list[Point]:
    """bench/benchmark.py's runners on a real checkpoint (random weights have no agreement worth
    drawing: none from them); the eager reference is the line x = 1."""
    if not doc.get("model"):
        return []
    return [Point(label=row["runner"], speedup=row["speedup"]["median"],
                  agreement=row["agreement"], accuracy=row["accuracy"], kind="benchmark")
            for row in doc["rows"] if row.get("agreement") is not None and row.get("speedup")]


def cpu_chart(points: list[Point], title: str, subtitle: str, path: Path) -> int:
    """Speed (× PyTorch eager, log axis) against agreement, each point numbered, and beside it the
    numbered list with the figures (accuracy among them); returns how many points were drawn."""
    height = max(6.4, 0.27 * len(points) + 1.4)  # the list beside: two lines a point
    fig, (ax, key) = plt.subplots(1, 2, figsize=(13, height), gridspec_kw={"width_ratios": [3, 2]})
    styles = {"benchmark": dict(marker="o", color="#4C72B0"),
              "proof point": dict(marker="s", color="#DD8452")}
    legends = {"benchmark": "python -m bench speed runner",
               "proof point": "proof point (the script's built model)"}
    drawn = 0
    for kind, style in styles.items():
        these = [p for p in points if p.kind == kind]
        if these:
            ax.scatter([p.speedup for p in these], [p.agreement for p in these], s=46, zorder=3,
                       label=legends[kind], **style)
            drawn += len(these)
    picked = [p for p in points if p.chosen]
    if picked:
        ax.scatter([p.speedup for p in picked], [p.agreement for p in picked], s=230,
                   facecolors="none", edgecolors="#C44E52", linewidths=1.6, zorder=4,
                   label="chosen by auto's measured trial")
    ordered = sorted(points, key=lambda p: (p.speedup, -p.agreement, p.label))
    lines = []
    for number, p in enumerate(ordered, 1):
        ax.annotate(str(number), (p.speedup, p.agreement), textcoords="offset points",
                    fontsize=8, ha="center", xytext=(0, 9 if number % 2 else -15))
        lines.append(f"{number:>2}. {p.label}{'  (auto)' if p.chosen else ''}\n"
                     f"    {p.speedup:.2f}×, agreement {p.agreement:.4f}"
                     + ("" if p.accuracy is None else f", accuracy {p.accuracy:.4f}"))
    key.axis("off")
    key.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7.5,
             transform=key.transAxes)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.text(1.0, 0.02, " PyTorch eager fp32 (reference)", transform=ax.get_xaxis_transform(),
            fontsize=8, color="grey")
    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(FuncFormatter(lambda value, _: f"{value:g}×"))
    speeds = [p.speedup for p in points] + [1.0]
    ax.set_xlim(min(speeds) / 1.3, max(speeds) * 1.3)
    low = min([p.agreement for p in points] + [0.99])
    ax.set_ylim(low - (1 - low) * 0.15, 1 + (1 - low) * 0.12)
    ax.set_xlabel("speed, × PyTorch eager fp32 (median of the rounds; log scale)")
    ax.set_ylabel("agreement with the reference (share of sentences)")
    fig.suptitle(f"{title}\n{subtitle}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))  # the legend below, off the points and the list
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **PNG)
    plt.close(fig)
    return drawn


def frontier_points(doc: dict) -> list[Point]:
    """bench/int8_variants.py --frontier's builds (the reference aside), by speed; builds within 3%
    of each other's speed at the same agreement (the same model: the search kept nothing more in
    float) are one point, their labels joined."""
    points: list[Point] = []
    for row in sorted(doc["rows"][1:], key=lambda row: row["speedup"]["median"]):
        point = Point(label=row["variant"].replace("--min-agreement ", "min-agreement ")
                      .replace(" (the default)", "").replace(" (no INT8)", ""),
                      speedup=row["speedup"]["median"], agreement=row["agreement"],
                      accuracy=row["accuracy"], kind="benchmark")
        last = points[-1] if points else None
        if last and last.agreement == point.agreement and point.speedup / last.speedup < 1.03:
            point = Point(label=f"{last.label}, {point.label}", speedup=last.speedup,
                          agreement=last.agreement, accuracy=last.accuracy, kind="benchmark")
            points.pop()
        points.append(point)
    return points


def frontier_chart(docs: dict[str, dict], title: str, path: Path) -> int:
    """What --min-agreement trades: per backend, speed (× PyTorch fp32, log axis) against
    agreement on the evaluated sentences, every build labelled (the first backend's above its
    points, the second's below), joined in order of speed; returns how many points were drawn."""
    fig, ax = plt.subplots(figsize=(10, 5.6))
    drawn = 0
    for (backend, doc), color, offset in zip(docs.items(), ("#4C72B0", "#DD8452"), (8, -13)):
        points = frontier_points(doc)
        ax.plot([p.speedup for p in points], [p.agreement for p in points], marker="o",
                color=color, label=f"{backend} ({Path(doc['model']).name})", zorder=3)
        for i, p in enumerate(points):  # neighbours in speed alternate heights, not to overlap
            ax.annotate(p.label, (p.speedup, p.agreement), textcoords="offset points",
                        fontsize=7.5, ha="center", xytext=(0, offset * (1 + i % 2)), color=color)
        drawn += len(points)
    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(FuncFormatter(lambda value, _: f"{value:g}×"))
    ax.set_xlabel("speed, × PyTorch eager fp32 (median of the rounds; log scale)")
    ax.set_ylabel("agreement with the reference on the evaluated sentences")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **PNG)
    plt.close(fig)
    return drawn


def cross_cpu_chart(folders: list[tuple[str, dict[str, dict]]], path: Path) -> int:
    """The proof points' × PyTorch eager, grouped by proof point, one bar per results folder (CPU),
    whiskers min–max of the rounds, the precision that ran under each bar; returns the bar count."""
    names = [name for name in PROOF_POINTS if any(name in docs for _, docs in folders)]
    fig, ax = plt.subplots(figsize=(max(11.0, 2.0 * len(names)), 5.5))  # room for file names
    width = 0.8 / len(folders)
    bars = 0
    for f, (folder, docs) in enumerate(folders):
        xs, heights, lows, highs, tops, labels = [], [], [], [], [], []
        for g, name in enumerate(names):
            if name not in docs:
                continue
            point = proof_point(name, docs[name])
            spread = docs[name]["runs"][1]["speedup"]
            xs.append(g + (f - (len(folders) - 1) / 2) * width)
            heights.append(point.speedup)
            lows.append(point.speedup - spread["min"])
            highs.append(spread["max"] - point.speedup)
            tops.append(spread["max"])
            labels.append(point.label.split(": ")[1])
        title = cpu_line(next(iter(docs.values())))
        drawn = ax.bar(xs, heights, width * 0.92, yerr=[lows, highs], capsize=3,
                       label=f"{folder}: {title}")
        bars += len(drawn)
        for x, height, top, label in zip(xs, heights, tops, labels):
            ax.text(x, 0.05, label, rotation=90, ha="center", va="bottom", fontsize=7, color="white")
            ax.text(x, top, f"{height:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{PROOF_POINTS[n]}\n({n})" for n in names], fontsize=8)
    ax.set_ylabel("× PyTorch eager fp32 (median; whiskers: slowest–fastest round)")
    ax.set_title("The proof points on each CPU measured (compare ratios, not sent/s, across CPUs)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **PNG)
    plt.close(fig)
    return bars
