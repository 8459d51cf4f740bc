"""When `auto`'s cached decision is reused, run as a user would: `bert_tiny.py` on one cache with
`--limit 64`, then on every sentence twice, then with `--rebuild never` over that cache made
read-only; the last must run and write nothing (every file's path, size and modification time
compared before and after)."""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from bench.harness import proof_point

BASE = ["--model", "models/bert-tiny-sst2", "--dataset", "data/sst2/validation.tsv"]
STEPS = (("--limit 64", ["--limit", "64"]), ("all sentences", []), ("all sentences again", []),
         ("--rebuild never, read-only cache", ["--rebuild", "never"]))


def tree(root: Path) -> list:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


def arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> dict:
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for name, extra in STEPS:
            out = Path(tmp) / "out.json"
            read_only = "never" in extra
            if read_only:
                subprocess.run(["chmod", "-R", "a-w", str(cache)], check=True)
                before = tree(cache)
            _, done = proof_point("bert_tiny.py", *BASE, *extra, "--cache-dir", str(cache),
                                  "--json", str(out), check=False)
            banner = next((line for line in done.stderr.splitlines()
                           if line.startswith("backend: ")), "")
            step = {"step": name, "exit": done.returncode, "banner": banner}
            if done.returncode == 0:
                choice = json.loads(out.read_text())["choice"]
                step.update(cached=choice["cached"], chosen=choice["chosen"],
                            trial_sentences=choice.get("trial_sentences"))
            if read_only:
                step["cache_unchanged"] = tree(cache) == before
                subprocess.run(["chmod", "-R", "u+w", str(cache)], check=True)
            steps.append(step)
            print(f"{name}: exit {done.returncode}, {banner}" +
                  (f"; cache unchanged: {step['cache_unchanged']}" if read_only else ""))
    return {"steps": steps}
