"""The README and docs/: every relative link resolves, the README stays short, the JSON page names
every key a run writes, and the results page regenerates to the same text."""
import json
import re
import shutil
from pathlib import Path

import pytest

import bert_quantize
import bert_tiny
from bench import report
from common.run.proofpoint import main
from conftest import ROOT, valid_results

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_the_readme_fits_on_a_few_screens_and_has_contents():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300 and "## Contents" in lines


SECTIONS = ("choice", "timing", "environment", "runs")  # objects docs/json.md has a section for


def keys(doc: dict, into: set, section: str = "Top level") -> set:
    """Every key of the results document's objects and of the objects in its lists, with the
    section of docs/json.md that must name it: its own object's, or the top level's table for
    the objects documented in its rows (not the values of free-form maps)."""
    for key, value in doc.items():
        into.add((section, key))
        if key in ("versions", "files", "build_facts", "runtime", "command", "notes"):
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict):
                keys(item, into, key if section == "Top level" and key in SECTIONS else section)
    return into


def page_sections(page: str) -> dict[str, str]:
    """docs/json.md's text under each `## ` heading, by the name in it (backticks dropped)."""
    parts = re.split(r"^## (.+)$", page, flags=re.M)
    return {heading.strip("` "): text for heading, text in zip(parts[1::2], parts[2::2])}


def test_the_json_page_names_every_key_a_run_writes(tiny_checkpoint, data_file, train_file,
                                                   tmp_path):
    tiny, quantized = tmp_path / "t.json", tmp_path / "q.json"
    assert main(bert_tiny.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                 "--repeats", "1", "--cache-dir", str(tmp_path / "c"),
                                 "--json", str(tiny)]) == 0
    assert main(bert_quantize.SPEC, ["--model", str(tiny_checkpoint), "--dataset", str(data_file),
                                     "--calibration-dataset", str(train_file),
                                     "--calibration-samples", "20", "--repeats", "1",
                                     "--cache-dir", str(tmp_path / "c"), "--json",
                                     str(quantized)]) == 0
    documents = [valid_results(json.loads(path.read_text())) for path in (tiny, quantized)]
    written = keys(documents[0], set()) | keys(documents[1], set())
    sections = page_sections((ROOT / "docs" / "json.md").read_text())
    assert {"Top level", *SECTIONS} <= set(sections)
    assert {(section, key) for section, key in written
            if f"`{key}`" not in sections[section]} == set()


def test_the_results_page_regenerates_and_a_second_run_changes_nothing(tmp_path):
    page = tmp_path / "results.md"
    shutil.copy(ROOT / "docs" / "results.md", page)
    folders = [str(f) for f in sorted((ROOT / "bench" / "results").iterdir()) if report.is_results(f)]
    assert report.main([*folders, "--page", str(page)]) == 0
    first = page.read_text()
    assert report.main([*folders, "--page", str(page)]) == 0
    assert page.read_text() == first
    committed = (ROOT / "docs" / "results.md").read_text()
    # the committed page is what the report makes of the committed files (charts aside)
    def text(page: str) -> list[str]:
        return [line for line in page.splitlines() if line.strip() and not line.startswith("![")]

    assert text(first) == text(committed)
