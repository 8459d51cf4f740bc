"""The one precision type: each label the flags take reads back as itself, a malformed one is
refused, and torch's dtypes map both ways."""
import pytest
import torch

from common.builds.precision import Precision, flag_choices


def test_every_label_the_flags_take_parses_to_what_it_says():
    assert flag_choices(int8=False) == ("auto", "fp32", "bf16", "fp16")
    assert flag_choices(int8=True) == ("auto", "int8+fp32", "int8+bf16", "int8+fp16")
    expected = {"fp32": ("fp32", None, "fp32"), "fp16": ("fp16", None, "fp16"),
                "int8+bf16": ("int8", "bf16", "bf16"), "int8": ("int8", None, "fp32")}
    for label, (kind, remainder, floating) in expected.items():
        precision = Precision.parse(label)
        assert (precision.kind, precision.remainder, precision.floating) == (kind, remainder,
                                                                             floating)
        assert precision.label == str(precision) == label
        assert precision.int8 is (kind == "int8")


@pytest.mark.parametrize("label", ["fp8", "int8+int8", "fp32+bf16", "int4", ""])
def test_a_label_that_is_no_precision_is_refused(label):
    with pytest.raises(ValueError):
        Precision.parse(label)


def test_torch_dtypes_both_ways():
    assert [Precision(k).torch_dtype() for k in ("fp32", "bf16", "fp16")] == [
        torch.float32, torch.bfloat16, torch.float16]
    assert Precision.of_torch_dtype(torch.bfloat16) == Precision("bf16")
