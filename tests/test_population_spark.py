"""`ivig-cds population --engine spark`: the same bytes as DuckDB, on a real local Spark job.

Needs the `spark` extra (PySpark, Java 17); skipped without it. CI installs it and runs this
file on one Python version (`.ci/run`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from ivig_cds.population import duckdb_engine, run_population, spark_engine
from tests.bulk_export import generate


def test_spark_and_duckdb_write_the_same_files(tmp_path: Path) -> None:
    """Byte-identical results, errors and summary; every tier as constructed."""
    export = tmp_path / "export"
    built = generate(export, 9 * 6, malformed_every=9)
    run_population(export, tmp_path / "duckdb", engine=duckdb_engine())
    run_population(export, tmp_path / "spark", engine=spark_engine("local[2]", partitions=4))
    for name in ("results.ndjson", "errors.ndjson", "summary.json", "report.html"):
        duck = (tmp_path / "duckdb" / name).read_bytes()
        assert (tmp_path / "spark" / name).read_bytes() == duck, name
    text = (tmp_path / "spark" / "results.ndjson").read_text(encoding="utf-8")
    results = [json.loads(line) for line in text.splitlines()]
    assert {r["patient"]: (r["tier"], r["primary_rule"]) for r in results} == {
        pid: (e.tier, e.primary_rule) for pid, e in built.patients.items() if e.tier is not None
    }
