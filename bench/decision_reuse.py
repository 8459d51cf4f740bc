"""When `auto`'s cached decision is reused, run as a user would: `bert_tiny.py` on one cache with
`--limit 64`, then on every sentence twice, then with `--rebuild never` over that cache made
read-only; the last must run and write nothing (every file's path, size and modification time
compared before and after)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.record import write_record  # noqa: E402
from common.cpu import cpu_summary  # noqa: E402
from common.paths import ROOT  # noqa: E402

BASE = ["bert_tiny.py", "--model", "models/bert-tiny-sst2", "--dataset", "data/sst2/validation.tsv"]
STEPS = (("--limit 64", ["--limit", "64"]), ("all sentences", []), ("all sentences again", []),
         ("--rebuild never, read-only cache", ["--rebuild", "never"]))


def tree(root: Path) -> list:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for name, extra in STEPS:
            out = Path(tmp) / "out.json"
            read_only = "never" in extra
            if read_only:
                subprocess.run(["chmod", "-R", "a-w", str(cache)], check=True)
                before = tree(cache)
            done = subprocess.run([sys.executable, *BASE, *extra, "--cache-dir", str(cache),
                                   "--json", str(out)], cwd=ROOT, capture_output=True, text=True)
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
    print(cpu_summary())
    if args.json:
        write_record(args.json, "bench/decision_reuse.py", argv, steps=steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
