"""What the report and the charts both read from a result file: which files are the proof
points, and the line that names the machine a file was measured on."""
from __future__ import annotations

# each proof point's result file and the script that makes it (python -m bench figures), in table order
PROOF_POINTS = {"tiny.json": "bert_tiny", "base.json": "bert_base", "base-fp32.json": "bert_base",
                "quantize.json": "bert_quantize", "quantize-ort.json": "bert_quantize",
                "quantize-int8-fp32.json": "bert_quantize",
                "quantize-min-agreement.json": "bert_quantize"}


def cpu_line(doc: dict) -> str:
    """The CPU a file was measured on, its matrix flags and the threads the runners got (not
    os.cpu_count()): the one way the report and the charts name a machine."""
    env = doc["environment"]
    threads = env.get("threads", {}).get("threads")
    used = f"{threads} of {env['cpu_count']} logical CPUs used" if threads else \
        f"{env['cpu_count']} logical CPUs"
    return f"{env['cpu']} ({', '.join(env['cpu_flags']) or 'no AVX2/AVX-512/AMX'}), {used}"
