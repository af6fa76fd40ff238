"""affectgpt/core/fileio.py: atomic files and folders (old content kept on an error, no temporary left), JSONL lines."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from affectgpt.core.fileio import atomic_dir, atomic_path, atomic_write, iter_jsonl, remove_dir, replace_dir


def test_atomic_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("old")
    with atomic_write(path) as f:
        f.write("new ")
        assert path.read_text() == "old"  # not visible before the block ends
        f.write("text")
    assert path.read_text() == "new text" and [p.name for p in tmp_path.iterdir()] == ["m.json"]
    with atomic_write(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write(path, "a"):
            pass


def test_a_writer_that_raises_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "new.png") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("savefig failed")
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_path_names_a_hidden_temporary_that_no_suffix_glob_matches(tmp_path):
    shard = tmp_path / "train-00000.safetensors"
    with atomic_path(shard) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".train-00000.safetensors.tmp-")
        tmp.write_bytes(b"x")
        assert list(tmp_path.glob("*.safetensors")) == []  # pathlib's glob matches hidden names too
    assert shard.read_bytes() == b"x"
    with pytest.raises(FileNotFoundError, match="nothing was written for .*empty.png"):
        with atomic_path(tmp_path / "empty.png"):
            pass


def test_atomic_dir_replaces_an_old_folder_only_when_the_new_one_is_whole(tmp_path):
    out = tmp_path / "export"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "b.txt").write_text("2")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # the old folder, untouched
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"] and [p.name for p in tmp_path.iterdir()] == ["export"]


def test_keep_existing_keeps_a_finished_folder_and_replaces_an_empty_one(tmp_path):
    out = tmp_path / "tok"
    out.mkdir()  # empty: replaced
    with atomic_dir(out, keep_existing=True) as tmp:
        (tmp / "first").write_text("")
    with atomic_dir(out, keep_existing=True) as tmp:  # another process finished first: its folder stays
        (tmp / "second").write_text("")
    assert [p.name for p in out.iterdir()] == ["first"] and [p.name for p in tmp_path.iterdir()] == ["tok"]
    src = tmp_path / "src"
    src.mkdir()
    assert replace_dir(src, out, keep_existing=True) is False and not src.exists()
    src.mkdir()
    (src / "third").write_text("")
    assert replace_dir(src, out) is True and [p.name for p in out.iterdir()] == ["third"]


def test_remove_dir_deletes_through_a_hidden_rename(tmp_path):
    (tmp_path / "step-1").mkdir()
    (tmp_path / "step-1" / "w").write_text("")
    remove_dir(tmp_path / "step-1")
    assert list(tmp_path.iterdir()) == []


def test_iter_jsonl_yields_line_numbers_and_skips_blank_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    # U+2028 is legal raw inside a JSON string (json.dumps writes it with ensure_ascii=False); \r\n endings
    path.write_bytes("\ufeff{\"name\": \"a\"}\r\n\n  \n".encode() + json.dumps({"name": "b\u2028c"},
                                                                               ensure_ascii=False).encode() + b"\n")
    assert list(iter_jsonl(path)) == [(1, {"name": "a"}), (4, {"name": "b\u2028c"})]
    gz = tmp_path / "p.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"name": "z"}\n'))
    assert list(iter_jsonl(gz)) == [(1, {"name": "z"})]


@pytest.mark.parametrize("line, cause", [
    (b"{not json", r"bad\.jsonl:2: not valid JSON \(Expecting property name enclosed in double quotes at column 2\)"),
    (b"[1, 2]", r"bad\.jsonl:2: expected a JSON object, found list"),
    (b'{"name": "\xff"}', r"bad\.jsonl:2: not UTF-8 text \(byte 11\)"),
])
def test_a_bad_line_names_the_file_and_line(tmp_path, line, cause):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"name": "a"}\n' + line + b'\n{"name": "c"}\n')
    with pytest.raises(ValueError, match=cause):
        list(iter_jsonl(path))

    class RowError(ValueError):
        pass

    with pytest.raises(RowError, match=cause):
        list(iter_jsonl(path, error=RowError))
    skipped = []
    assert [n for n, _ in iter_jsonl(path, on_bad=lambda n, e: skipped.append((n, e)))] == [1, 3]
    assert len(skipped) == 1 and skipped[0][0] == 2 and re.search(cause, str(skipped[0][1]))
