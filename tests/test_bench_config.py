"""The intake benchmark measures the path `leadflow serve` runs: the same Leadflow configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.intake import serving_app
from leadflow.bootstrap import open_app
from leadflow.services.training import Predictor
from leadflow.settings import Settings
from leadflow.store.writer import GroupWriter
from tests.support import THREE_MANAGERS


def test_the_intake_bench_builds_the_app_as_serve_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("LEADFLOW_")]:
        monkeypatch.delenv(name)
    (tmp_path / "rules.yaml").write_text(THREE_MANAGERS)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", rules=tmp_path / "rules.yaml")
    served = open_app(settings, serving=True)  # what `leadflow serve` opens
    bench = serving_app(served.engine, served.rules)
    try:
        for app in (served, bench):
            assert isinstance(app.predict, Predictor) and app.predict.engine is served.engine
            assert isinstance(app.writer, GroupWriter) and app.writer.engine is served.engine
        assert (bench.rules, bench.notify, bench.base_url) == (served.rules, served.notify, served.base_url)
        assert {f for f in vars(served)} == {f for f in vars(bench)}
    finally:
        for app in (served, bench):
            assert app.writer is not None
            app.writer.close()
        served.engine.dispose()
