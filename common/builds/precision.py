"""A build's precision, one type from the flag to the report: a float precision, or INT8 with the
float precision of what it leaves in float (its remainder). Its label (fp32, int8+bf16) is written
and read here only; so is its torch dtype."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

FLOATS = ("fp32", "bf16", "fp16")
INT8 = "int8"


@dataclass(frozen=True)
class Precision:
    kind: str  # fp32 | bf16 | fp16 | int8
    remainder: Optional[str] = None  # int8 only: what stays in float, where known

    def __post_init__(self) -> None:
        if self.kind not in FLOATS + (INT8,) or (self.remainder is not None and (
                self.kind != INT8 or self.remainder not in FLOATS)):
            raise ValueError(f"not a precision: {self.kind}, remainder {self.remainder}")

    @classmethod
    def parse(cls, label: str) -> "Precision":
        """fp32, bf16, fp16, int8 or int8+<float>; ValueError for anything else."""
        kind, _, remainder = label.partition("+")
        return cls(kind, remainder or None)

    @property
    def label(self) -> str:
        return f"{self.kind}+{self.remainder}" if self.remainder else self.kind

    @property
    def int8(self) -> bool:
        return self.kind == INT8

    @property
    def floating(self) -> str:
        """The float precision it computes in: its own, or INT8's remainder (fp32 where unsaid)."""
        return (self.remainder or "fp32") if self.int8 else self.kind

    def torch_dtype(self):
        """The torch dtype of a float precision's weights and activations."""
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.kind]

    @classmethod
    def of_torch_dtype(cls, dtype) -> "Precision":
        """The precision a torch dtype is (read back from a built model)."""
        return next(cls(kind) for kind in FLOATS if cls(kind).torch_dtype() == dtype)

    def __str__(self) -> str:
        return self.label


def flag_choices(int8: bool) -> tuple[str, ...]:
    """What --precision takes: a float precision, or (bert_quantize.py) INT8 with each remainder."""
    return ("auto",) + (tuple(Precision(INT8, p).label for p in FLOATS) if int8 else FLOATS)
