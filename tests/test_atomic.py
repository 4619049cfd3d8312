import pytest

from stages.shared.atomic import atomic_dir, atomic_path, write_json


def test_failed_write_keeps_the_old_file(tmp_path):
    dest = tmp_path / "m.json"
    write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert dest.read_text() == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_failed_dir_build_keeps_the_old_dir(tmp_path):
    dest = tmp_path / "raw"
    with atomic_dir(dest) as d:
        (d / "a.jpg").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_dir(dest) as d:
            (d / "b.jpg").write_bytes(b"new")
            raise RuntimeError("network gone")
    assert [p.name for p in dest.iterdir()] == ["a.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_dir_is_replaced_whole(tmp_path):
    dest = tmp_path / "raw"
    with atomic_dir(dest) as d:
        (d / "a.jpg").write_bytes(b"1")
    with atomic_dir(dest) as d:
        (d / "b.jpg").write_bytes(b"2")
    assert [p.name for p in dest.iterdir()] == ["b.jpg"]
