"""Target strings: parsing, value coercion, canonical keys and round trips."""

from __future__ import annotations

import json

import pytest

from latbench.errors import ConfigError
from latbench.target import Target

TEXT = "onnxruntime-cpu:threads=2,opt_level=all,kernels=false"


def test_parse_name_and_typed_settings() -> None:
    target = Target.parse(TEXT)
    assert target.name == "onnxruntime-cpu"
    assert target.device == "cpu"
    assert target.get("threads") == 2 and type(target.get("threads")) is int
    assert target.get("opt_level") == "all"
    assert target.get("kernels") is False
    assert target.get("missing") is None
    assert target.get("missing", 7) == 7
    # settings are stored sorted by key
    assert target.settings == (("kernels", False), ("opt_level", "all"), ("threads", 2))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("False", False),
        ("4", 4),
        ("-1", -1),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("CPUExecutionProvider", "CPUExecutionProvider"),
    ],
)
def test_values_are_coerced_to_bool_int_float_or_str(text: str, value: object) -> None:
    got = Target.parse(f"x:v={text}").get("v")
    assert got == value
    assert type(got) is type(value)


def test_name_only_and_whitespace() -> None:
    assert Target.parse("torch-cpu") == Target("torch-cpu")
    assert Target.parse("torch-cpu").settings == ()
    assert Target.parse("  torch-cpu:  threads = 2 , , ") == Target.parse("torch-cpu:threads=2")
    assert Target.parse("torch-cpu:") == Target("torch-cpu")
    # spaces around the name are not part of it (they were kept before a fix: "torch-cpu ")
    assert Target.parse("torch-cpu : threads=2").name == "torch-cpu"
    assert Target.parse("torch-cpu : threads=2") == Target.parse("torch-cpu:threads=2")


def test_settings_order_does_not_change_the_target_or_its_key() -> None:
    a = Target.parse(TEXT)
    b = Target.parse("onnxruntime-cpu:kernels=false,threads=2,opt_level=all")
    assert a == b
    assert hash(a) == hash(b)
    assert a.key == b.key
    assert str(a) == str(b)


def test_keys_differ_for_different_targets() -> None:
    keys = {
        Target.parse(TEXT).key,
        Target.parse("onnxruntime-cpu:threads=4,opt_level=all,kernels=false").key,
        Target.parse("onnxruntime-cpu:threads=2,opt_level=basic,kernels=false").key,
        Target.parse("torch-cpu:threads=2,opt_level=all,kernels=false").key,
        Target("onnxruntime-cpu", "cuda", Target.parse(TEXT).settings).key,
    }
    assert len(keys) == 5


def test_a_repeated_setting_keeps_the_last_value() -> None:
    assert Target.parse("x:threads=1,threads=3").get("threads") == 3


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x:threads", "target setting 'threads' is not key=value (e.g. x:threads=2)"),
        ("x:threads=2,fast", "target setting 'fast' is not key=value"),
        ("x:=2", "target setting '=2' is not key=value"),
        ("x: =2", "target setting '=2' is not key=value"),
        (":a=1", "empty target name"),
        ("  :a=1", "empty target name"),
        ("", "empty target name"),
        ("   ", "empty target name"),
    ],
)
def test_malformed_target_strings(text: str, shown: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Target.parse(text)
    message = str(exc.value)
    assert "\n" not in message
    assert shown in message


@pytest.mark.parametrize(
    "text",
    [
        TEXT,
        "torch-cpu",
        "torch-cpu:threads=1",
        "onnxruntime-cpu:intra=0.25,spin=true,provider=CPUExecutionProvider",
    ],
)
def test_str_round_trips_through_parse(text: str) -> None:
    target = Target.parse(text)
    assert Target.parse(str(target)) == target
    assert Target.parse(str(target)).key == target.key


def test_str_is_canonical() -> None:
    assert str(Target.parse(TEXT)) == "onnxruntime-cpu:kernels=False,opt_level=all,threads=2"
    assert str(Target("torch-cpu")) == "torch-cpu"


def test_dict_round_trip() -> None:
    target = Target.parse(TEXT)
    data = target.to_dict()
    assert data == {
        "name": "onnxruntime-cpu",
        "device": "cpu",
        "settings": {"kernels": False, "opt_level": "all", "threads": 2},
    }
    assert Target.from_dict(json.loads(json.dumps(data))) == target
    cuda = Target("torch-cuda", "cuda", (("threads", 1),))
    assert Target.from_dict(cuda.to_dict()) == cuda
    assert Target.from_dict({"name": "torch-cpu"}) == Target("torch-cpu")


def test_settings_may_be_given_as_a_mapping() -> None:
    target = Target("x", settings={"threads": 2, "a": "b"})  # type: ignore[arg-type]
    assert target.settings == (("a", "b"), ("threads", 2))
    assert target == Target.parse("x:threads=2,a=b")
