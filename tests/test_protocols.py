"""The published protocols' scripts run end to end on stand-ins in the data sets' own formats
(benchmarks/protocols/: MNIST anomaly detection, the latent-EBM paper's Table 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROTOCOLS = Path(__file__).resolve().parents[1] / "benchmarks" / "protocols"


def _run(script: str, *args: str, tmp_path: Path) -> tuple[list[dict], str]:
    results = tmp_path / "results.jsonl"
    done = subprocess.run([sys.executable, str(PROTOCOLS / script), "--check", "--device", "cpu",
                           "--results", str(results), *args], capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    return rows, done.stdout


def test_mnist_anomaly_runs_on_a_stand_in_and_skips_what_is_done(tmp_path):
    rows, out = _run("mnist_anomaly.py", "--digit", "4", tmp_path=tmp_path)
    assert [(r["digit"], r["seed"]) for r in rows] == [(4, 0)]
    row = rows[0]
    assert row["chance"] == pytest.approx(0.1)  # one digit of ten in the stand-in's test split
    for column in ("joint", "prior", "norm", "reconstruction", "pca_residual"):
        assert 0.0 < row[f"auprc_{column}"] <= 1.0
    assert "| LEBM (Pang et al. 2020) | 0.336 | 0.630 | 0.619 | 0.463 | 0.413 |" in out
    again, out = _run("mnist_anomaly.py", "--digit", "4", tmp_path=tmp_path)
    assert again == rows  # the row in the results file is not run again
    assert "(latentgen score's default)** | – | " in out


@pytest.mark.slow
def test_the_lebm_table_runs_on_stand_ins_in_the_real_formats(tmp_path):
    rows, out = _run("lebm_table.py", tmp_path=tmp_path)
    assert [r["data"] for r in rows] == ["svhn", "cifar10", "celeba"]
    assert all(r["stand_in"] and r["mse"] > 0 and r["fid"] >= 0 for r in rows)
    assert "celeba (stand-in) | latent EBM prior" in out
