"""python -m bench NAME [options]: every experiment and the results page (bench/harness.py)."""
from bench.harness import main

raise SystemExit(main())
