"""The JSON records' layouts (docs/results.schema.json, docs/bench-record.schema.json), checked as
a record is written, so that a file that does not match its documented layout is never left: the
writer's mistake, not the user's, raised before anything is written."""
from __future__ import annotations

import json
from functools import lru_cache

from ..host.paths import ROOT

RESULTS = "results.schema.json"
BENCH_RECORD = "bench-record.schema.json"


class RecordInvalid(ValueError):
    """A record that does not match its schema."""


@lru_cache(maxsize=None)
def _validator(schema: str):
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / schema).read_text()))


def check(document: dict, schema: str) -> None:
    """Raise RecordInvalid naming the first field that does not match `schema`. Where jsonschema
    is not installed (the GroqFlow stack, requirements-groq.txt) nothing is checked."""
    try:
        validator = _validator(schema)
    except ImportError:
        return
    written = json.loads(json.dumps(document))  # as the file will read: tuples are arrays
    errors = sorted(validator.iter_errors(written), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "the top level"
        raise RecordInvalid(f"this record does not match docs/{schema} at {where}: "
                            f"{errors[0].message}")
