"""Build here, execute there: the original proof points' two machines (`--build` where the
compilers are, `--execute` where the model runs). `--build` leaves a manifest beside its builds in
the cache: the model and options they were built from, the library versions and the host they were
built with, the cache folders they are, relative to the cache. `--execute` finds it for its own
model, checks it against its own run, and loads the builds without making any: nothing exported,
calibrated or quantized there, the calibration samples' identity read from the manifest."""
from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..backends.base import Runner
from ..builds import fidelity
from ..builds.cache import BuildCache
from ..host import gpu
from ..host.cpu import cpu_identity
from ..host.errors import UserError
from ..host.files import write_atomic
from ..inputs.batching import Encoded
from ..inputs.calibration import Calibration

MANIFESTS = "manifests"
MANIFEST_VERSION = 1
UNKNOWN = ("unknown", "not installed")  # what the versions say of a package that is not there


def host() -> dict:
    """Where a build was made or is executed: its CPU and, where torch can use one, its GPU."""
    return {**cpu_identity(), "gpu": gpu.identity()}


def _path(cache: BuildCache, script: str, model: str) -> Path:
    return cache.root / MANIFESTS / f"{script}-{hashlib.sha256(model.encode()).hexdigest()[:16]}.json"


def _folders(cache: BuildCache, built: dict) -> list[str]:
    """The cache folders the builds are, relative to the cache: the entries this run made or
    found (the builds, the export they share) and the folders a backend keeps outside them
    (inductor's, GroqFlow's), as its runner reports them."""
    found = [folder for folder in cache.touched() if not folder.name.startswith("choice-")]
    found += [Path(runner.facts["build_folder"]) for runner in built.values()
              if runner.facts.get("build_folder")]
    root = cache.root.resolve()
    return sorted({str(Path(folder).resolve().relative_to(root)) for folder in found})


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def write_manifest(cache: BuildCache, script: str, command: Sequence[str], model: str,
                   built: dict, versions: dict, calibration: Optional[Calibration]) -> Path:
    """The manifest of this --build: what each candidate's build is and what it was made of."""
    path = _path(cache, script, model)
    manifest = {"manifest_version": MANIFEST_VERSION, "script": script, "model": model,
                "command": list(command), "built_on": host(), "versions": versions,
                "builds": {str(c): runner.name for c, runner in built.items()},
                "folders": _folders(cache, built),
                "calibration": calibration.cache_parts() if calibration is not None else None,
                "validation_slice": _tokens(calibration.validation)
                if calibration is not None and calibration.validation is not None else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(manifest, indent=2, default=str) + "\n")
    return path


def read_manifest(cache: BuildCache, script: str, model: str, source: str,
                  build_command: str) -> dict:
    """This model's manifest in the cache; a missing one, or one for another model, is one line
    saying how to make it."""
    path = _path(cache, script, model)
    if path.is_file():
        return json.loads(path.read_text())
    others = sorted((cache.root / MANIFESTS).glob(f"{script}-*.json"))
    if others:
        made_for = json.loads(others[-1].read_text())["command"]
        raise UserError(f"--execute: the builds of {script}.py in '{cache.root}' were made for "
                        f"another model ({shlex.join(made_for)}), not for {source}; make this "
                        f"one's with: {build_command}")
    raise UserError(f"--execute: no build of {script}.py for {source} in '{cache.root}'; make it "
                    f"with: {build_command} (on any machine, then copy that cache folder here)")


def check(manifest: dict, versions: dict) -> list[str]:
    """Refuse builds made with other library versions (one line); say where they were built
    when that is another CPU or GPU (allowed: what it compiles to is chosen where it runs, and a
    --min-agreement build's slice is scored again here: `slice_here`)."""
    there_versions = {name: version for name, version in manifest["versions"].items()
                      if version not in UNKNOWN}  # not on the build host: nothing it built with
    differ = [f"{name} {there_versions[name]} there, {version} here"
              for name, version in versions.items()
              if name in there_versions and there_versions[name] != version]
    if differ:
        raise UserError(f"--execute: the builds were made with other library versions "
                        f"({'; '.join(differ)}); make them here with --build, or install those")
    here, there = host(), manifest["built_on"]
    if here == there:
        return []
    return [f"--execute: built on {describe(there)}, executed on {describe(here)}"]


def cpu_of(where: dict) -> dict:
    """A host's CPU, as cpu_identity() names one: what a --min-agreement search scored on."""
    return {name: where[name] for name in cpu_identity()}


def slice_here(runner: Runner, reference: Runner, calibration: Optional[Calibration],
               min_agreement: Optional[float]) -> Optional[dict]:
    """A --min-agreement build executed on another CPU than its search scored on (the
    calibration's record says which): the layers it keeps in float are the build's, the
    arithmetic is this CPU's, so its validation slice (as --build drew it) is scored again here,
    against PyTorch fp32, by the search's rule."""
    if (min_agreement is None or not runner.facts.get("accuracy_control")
            or calibration is None or calibration.validation is None
            or calibration.searched_on() == cpu_identity()):
        return None
    float_logits = fidelity.slice_logits(reference.predict, calibration.validation)
    figures = fidelity.scored(fidelity.slice_logits(runner.predict, calibration.validation),
                              float_logits)
    return {"scored_on": cpu_identity(), "against": "pytorch fp32", "min_agreement": min_agreement,
            "validation_sentences": len(float_logits), **figures,
            "reached": figures["agreement_lower_bound"] >= min_agreement}


def said(record: dict, runner: Runner) -> list[str]:
    """The lines under an --execute's table: a build compiled here rather than loaded, and a
    searched build's slice as scored here."""
    lines = []
    if runner.facts.get("compiled_here"):
        lines.append(f"--execute: {runner.name} compiled here, not loaded: compiled code is its "
                     f"device's own, and none was copied for this one, {describe(host())} "
                     f"(built on {describe(record['built_on'])})")
    scored = record.get("slice_here")
    if scored:
        searched = runner.facts["accuracy_control"]
        lines.append(
            f"--min-agreement {scored['min_agreement']} on this CPU: the "
            f"{scored['validation_sentences']}-sentence validation slice agreed "
            f"{scored['agreement']:.4f} with PyTorch fp32, at least "
            f"{scored['agreement_lower_bound']:.4f} with {fidelity.CONFIDENCE:.0%} confidence: "
            + ("reached here" if scored["reached"] else "SHORT of the target here")
            + f" (its search, on {describe(record['built_on'])}: at least "
            f"{searched['agreement_lower_bound']:.4f})")
    return lines


def describe(where: dict) -> str:
    """A host in a few words: its CPU, and its GPU where it has one."""
    said = f"{where['cpu']} ({where['family']})" if where["family"] else where["cpu"]
    return said + (f" with {where['gpu']['name']}" if where.get("gpu") else "")


def command_as(command: Sequence[str], stage: str) -> str:
    """The run's command as the other stage runs it (`--build` or `--execute`); results flags
    only where results are written."""
    words, skip = ["python"], False
    for word in command:
        if skip:
            skip = False
        elif word in ("-b", "--build", "-e", "--execute"):
            continue
        elif stage == "--build" and word in ("--json", "--mismatches"):
            skip = True
        elif not (stage == "--build" and word.startswith(("--json=", "--mismatches="))):
            words.append(word)
    return shlex.join(words[:2] + [stage] + words[2:])


def executed(cache: BuildCache, manifest: dict, runner: Runner, reference: Runner,
             calibration: Optional[Calibration], min_agreement: Optional[float]) -> dict:
    """The results JSON's `build`: where it was built and executed, what was loaded, and a
    searched build's slice as scored here."""
    record = {"built_on": manifest["built_on"], "built_with": manifest["command"],
              "executed_on": host(), "loaded": _folders(cache, {None: runner})}
    scored = slice_here(runner, reference, calibration, min_agreement)
    if scored:
        record["slice_here"] = scored
    return record


@dataclass(frozen=True)
class RecordedCalibration(Calibration):
    """The calibration samples as --build drew them, known by the manifest's record alone: what
    the builds' keys hold (with the CPU a --min-agreement search scored on); no row is read or
    tokenized on the executing host. The validation slice comes as --build tokenized it."""
    parts: dict = field(default_factory=dict)
    built_on: dict = field(default_factory=dict)

    def cache_parts(self) -> dict:
        return self.parts

    def searched_on(self) -> dict:
        return cpu_of(self.built_on)

    def record(self) -> dict:
        return {name: value for name, value in self.parts.items() if name != "tokens"}


def recorded_calibration(manifest: dict, max_length: int) -> Optional[Calibration]:
    parts = manifest["calibration"]
    if parts is None:
        return None
    nothing = Encoded(ids=[], type_ids=[], max_length=max_length, pad_id=0)
    validation = manifest.get("validation_slice")
    return RecordedCalibration(source=parts["source"], seed=parts["seed"],
                               indices=np.asarray(parts["indices"]), encoded=nothing,
                               requested=len(parts["indices"]),
                               validation_indices=np.asarray(parts["validation_indices"])
                               if "validation_indices" in parts else None,
                               validation=_encoded(validation) if validation else None,
                               parts=parts, built_on=manifest["built_on"])


def _tokens(encoded: Encoded) -> dict:
    """A tokenized slice as the manifest holds it."""
    return {"ids": [ids.tolist() for ids in encoded.ids],
            "type_ids": [types.tolist() for types in encoded.type_ids],
            "max_length": encoded.max_length, "pad_id": encoded.pad_id}


def _encoded(tokens: dict) -> Encoded:
    return Encoded(ids=[np.asarray(ids, dtype=np.int64) for ids in tokens["ids"]],
                   type_ids=[np.asarray(types, dtype=np.int64) for types in tokens["type_ids"]],
                   max_length=tokens["max_length"], pad_id=tokens["pad_id"])


def report(cache: BuildCache, manifest_path: Path, versions: dict, device: str,
           execute_command: str) -> str:
    """What --build prints: each build's folders and size, what the executing host needs, and
    the commands that copy the cache and execute there."""
    manifest = json.loads(manifest_path.read_text())
    lines = [f"built {name} ({candidate})" for candidate, name in manifest["builds"].items()]
    for folder in manifest["folders"]:
        lines.append(f"  {folder}: {folder_bytes(cache.root / folder) / 1e6:.1f} MB")
    needs = ", ".join(f"{name} {version}" for name, version in versions.items()
                      if version not in UNKNOWN)
    lines += [f"the executing host needs: {needs}; device {device}",
              f"manifest: {manifest_path.relative_to(cache.root)}",
              f"copy: rsync -a {shlex.quote(str(cache.root))}/ OTHER-HOST:"
              f"{shlex.quote(str(cache.root))}/   (or any folder, passed as --cache-dir there)",
              f"then there: {execute_command}"]
    return "\n".join(lines)
