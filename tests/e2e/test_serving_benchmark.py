"""benchmarks/serving.py, in miniature: the rounds run, every concurrent caller's result is
checked against a lone call's (the benchmark raises otherwise), and the table prints."""

from benchmarks import serving


def test_serving_benchmark_rounds_run():
    rows = serving.bench("lenet", 1, 1, seconds=0.01, repeats=1)
    assert [r["callers"] for r in rows] == list(serving.CALLERS)
    assert all(r["pool"] > 0 and r["serial"] > 0 and r["arenas"] >= 1 for r in rows)
    text = serving.table(rows, serving.COLUMNS)
    assert "inf/s" in text and "lenet b1" in text
