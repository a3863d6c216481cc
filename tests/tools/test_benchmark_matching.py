"""tools/benchmark_matching.py at a small size: every variant gives the same pairs (the tool
exits otherwise) and the JSON holds a row per variant and shape."""

import itertools

from conftest import benchmark_rows


def test_the_matching_benchmark_writes_every_variant(tmp_path):
    argv = ["--device", "cpu", "--queries", "30", "--stages", "2", "--repeats", "1"]
    rows = benchmark_rows("benchmark_matching", argv, tmp_path, "matching_cpu.json", 300)
    shapes = {row["shape"] for row in rows}
    assert shapes == {"B=2 L=2 Q=30 untrained", "B=2 L=2 Q=30 trained"}
    expected = {
        "match": {"ours", "ours, one thread", "one by one"},
        "solve": {"ours", "one by one"},
    }
    for op, shape in itertools.product(expected, shapes):
        variants = {r["variant"]: r for r in rows if r["shape"] == shape and r["op"] == op}
        assert set(variants) == expected[op]
        assert variants["ours"]["ratio_to_ours"] == 1.0
        assert all(row["median_ms"] > 0 for row in variants.values())
