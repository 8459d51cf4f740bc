"""Where the repository is, and ../shared beside it (our team's checkpoints and SST-2 copies, used
by the benchmarks and some tests when present): defined once."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # common/host/paths.py
SHARED = ROOT.parent / "shared"
