"""One source of defaults: the command line's flags fill the library's settings dataclasses,
and a flag not given leaves exactly the dataclass default (shown in --help)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.cli import build_parser
from latbench.cli.demo import demo_settings
from latbench.cli.distill import distill_config
from latbench.cli.search import search_job
from latbench.cli.stability import stability_settings
from latbench.demo import DemoSettings
from latbench.distill.pipeline import proxy_config
from latbench.distill.settings import DistillConfig, LossWeights
from latbench.errors import ConfigError
from latbench.predictors.settings import EvaluationSettings
from latbench.search.settings import SearchJob, SearchSettings
from latbench.stability import StabilitySettings

SEARCH_REQUIRED = ["--space", "demo", "--predictor", "p.json", "--out", "o", "--teacher", "t", "--data", "d"]
DISTILL_REQUIRED = ["--teacher", "t", "--data", "d", "--arch", "{}", "--out", "o"]


def parse(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(list(argv))


def test_search_with_no_options_builds_exactly_the_default_settings() -> None:
    job = search_job(parse("search", *SEARCH_REQUIRED))
    assert job.settings == SearchSettings()
    assert job == SearchJob(space="demo", predictor="p.json", out="o", teacher="t", data="d")


def test_search_options_and_config_fill_the_same_dataclass(tmp_path: Path) -> None:
    config = tmp_path / "search.toml"
    config.write_text(
        'space = "demo"\npredictor = "p.json"\nout = "o"\nsurrogate = true\ntrials = 5\nseed = 3\n'
    )
    job = search_job(parse("search", "--config", str(config), "--trials", "7", "--reference-ms", "2.5"))
    assert job.settings == SearchSettings(trials=7, seed=3, reference_latency_ms=2.5)  # the command line wins
    assert job.surrogate and job.teacher is None and job.proxy_steps == SearchJob.defaults()["proxy_steps"]
    proxy, full = job.distill_configs()
    assert proxy == DistillConfig.proxy(seed=3) and full == DistillConfig(seed=3)
    # a study begun with other losses (logits only, the proxy's default before 0.1's
    # defaults were unified) resumes with them given back
    old = search_job(parse("search", "--config", str(config), "--losses", "logits=1"))
    assert all(c.losses == LossWeights(logits=1.0) for c in old.distill_configs())
    with pytest.raises(ConfigError, match="bad loss weight 'hiden=1'"):
        search_job(parse("search", "--config", str(config), "--losses", "hiden=1"))


def test_search_needs_its_inputs_and_refuses_unknown_config_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs --space, --predictor, --out, --teacher, --data"):
        search_job(parse("search"))
    config = tmp_path / "bad.toml"
    config.write_text('space = "demo"\ntrails = 5\n')
    with pytest.raises(ConfigError, match=r"bad.toml: unknown search option\(s\) trails"):
        search_job(parse("search", "--config", str(config)))


def test_distill_with_no_options_builds_exactly_the_default_config() -> None:
    assert distill_config(parse("distill", *DISTILL_REQUIRED)) == DistillConfig()
    assert distill_config(parse("distill", *DISTILL_REQUIRED, "--proxy")) == proxy_config(DistillConfig())
    assert DistillConfig().losses == LossWeights(logits=1.0, hidden=1.0)  # one default for CLI and API
    assert DistillConfig.proxy().losses == DistillConfig().losses


def test_evaluate_and_demo_defaults_come_from_their_settings() -> None:
    args = parse("evaluate", "--target", "onnxruntime-cpu")
    assert (args.split, args.folds, args.test_share, args.seed) == (
        EvaluationSettings().split,
        EvaluationSettings().folds,
        EvaluationSettings().test_share,
        EvaluationSettings().seed,
    )
    assert demo_settings(parse("demo")) == DemoSettings()
    assert stability_settings(parse("stability")) == StabilitySettings()


def test_help_shows_the_dataclass_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("search", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert f"[{SearchSettings().trials}]" in text and f"[{SearchSettings().startup_trials}]" in text
    with pytest.raises(SystemExit):
        parse("distill", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert f"[{DistillConfig().losses.format()}]" in text and "[logits=1,hidden=1]" in text
