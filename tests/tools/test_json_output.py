"""tools/json_output.py: the JSON every tool writes."""

import json

import pytest
from conftest import load_tool


def test_write_json_makes_the_folder_and_leaves_no_partial_file(tmp_path, capsys):
    write_json = load_tool("json_output").write_json
    path = tmp_path / "new" / "folder" / "result.json"
    payload = {"rows": [{"variant": "ours", "median_ms": 1.5}], "device": "cpu"}
    assert write_json(path, payload) == path
    assert json.loads(path.read_text()) == payload
    assert path.read_text().endswith("\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]
    assert f"wrote {path}" in capsys.readouterr().out

    write_json(str(path), [1, 2])  # replaces, from a string path too
    assert json.loads(path.read_text()) == [1, 2]


def test_a_payload_that_is_not_json_leaves_the_old_file(tmp_path):
    write_json = load_tool("json_output").write_json
    path = tmp_path / "result.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
