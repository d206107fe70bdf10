"""``watch`` as a ledger: file versions, pending and retried files, damaged logs, one writer,
and an idle cost that does not grow with the folder."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from pathlib import Path
import threading
import time

import pytest
from PIL import Image

from edge_runtime.classifier import Classifier
from edge_runtime.cli import main
from edge_runtime.image_io import ImageDecodeError
from edge_runtime.ledger import Ledger, LogLockedError, logged_paths
from edge_runtime.scanner import FolderIndex
from edge_runtime.watch import WatchConfig, watch
from tests.conftest import synthetic_mri

MODEL = str(Path(__file__).parent / "assets" / "tiny_int8.tflite")


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(MODEL, num_threads=1)


def _img(path: Path, seed: int = 0) -> Path:
    Image.fromarray(synthetic_mri(seed=seed)).save(path)
    return path


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(synthetic_mri(seed=seed)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _rows(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()]


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_changed_or_reused_file_is_classified_again(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    scan = _img(folder / "a.jpg", 1)
    cfg = WatchConfig(folder, log)
    assert watch(clf, cfg, once=True).appended == 1
    assert watch(clf, cfg, once=True).appended == 0  # same version: done
    scan.unlink()
    (folder / "a.jpg").write_bytes(_jpeg(2))  # the name is reused for another scan
    _age(folder / "a.jpg", -5)  # a different mtime even on coarse clocks
    assert watch(clf, cfg, once=True).appended == 1
    rows = _rows(log)
    assert [r["path"] for r in rows] == [str(folder / "a.jpg")] * 2 and rows[0]["file_key"] != rows[1]["file_key"]


def test_relative_then_absolute_folder_is_not_redone(tmp_path, clf, monkeypatch):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    _img(folder / "a.jpg")
    monkeypatch.chdir(tmp_path)
    assert watch(clf, WatchConfig(Path("in"), log), once=True).appended == 1
    assert watch(clf, WatchConfig(folder.resolve(), log), once=True).appended == 0
    assert watch(clf, WatchConfig(Path("in/../in"), log), once=True).appended == 0


def test_once_leaves_a_half_written_file_pending(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    data = _jpeg(3)
    (folder / "a.jpg").write_bytes(data[: len(data) // 2])  # the scanner is still writing
    summary = watch(clf, WatchConfig(folder, log), once=True)
    assert summary.appended == 0 and summary.deferred == {str(folder / "a.jpg"): "still being written"}
    assert log.read_text() == ""
    (folder / "a.jpg").write_bytes(data)
    assert watch(clf, WatchConfig(folder, log), once=True).appended == 1
    assert [r["error"] for r in _rows(log)] == [None]


def test_truncated_old_file_is_a_final_error_and_redone_when_completed(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    data = _jpeg(3)
    (folder / "a.jpg").write_bytes(data[:600])
    _age(folder / "a.jpg", 3600)  # not being written: really broken
    assert watch(clf, WatchConfig(folder, log), once=True).failed == 1
    (folder / "a.jpg").write_bytes(data)  # completed after all: a new version
    assert watch(clf, WatchConfig(folder, log), once=True).appended == 1
    assert [r["error"] is None for r in _rows(log)] == [False, True]


def test_stalled_writer_gets_no_error_record(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    data = _jpeg(4)
    path = folder / "a.jpg"
    seen, notes = [], []
    stop = threading.Event()
    t = threading.Thread(target=watch, args=(clf, WatchConfig(folder, log, interval=0.05), stop.is_set),
                         kwargs={"on_record": seen.append, "on_note": notes.append})
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        t.start()
        time.sleep(0.6)  # the writer stalls for many polls
        f.write(data[len(data) // 2:])
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert [r["error"] for r in _rows(log)] == [None]
    assert any("still being written" in n for n in notes)


def test_transient_read_errors_are_retried_with_backoff(tmp_path, clf, monkeypatch):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    _img(folder / "a.jpg")
    real = Classifier.classify
    attempts = []

    def denied_twice(self, path):
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            raise ImageDecodeError(path, "cannot read file (Permission denied)", "io", errno.EACCES)
        return real(self, path)

    monkeypatch.setattr(Classifier, "classify", denied_twice)
    summary = watch(clf, WatchConfig(folder, log), once=True)  # --once: left for the next run
    assert summary.appended == 0 and "will retry" in summary.deferred[str(folder / "a.jpg")]
    attempts.clear()
    stop = threading.Event()
    seen = []
    t = threading.Thread(target=watch, args=(clf, WatchConfig(folder, log, interval=0.05), stop.is_set),
                         kwargs={"on_record": seen.append})
    t.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    t.join(5)
    assert len(attempts) == 3 and [r["error"] for r in _rows(log)] == [None]
    assert attempts[2] - attempts[1] > attempts[1] - attempts[0]  # backoff grows


def test_permanently_unreadable_file_gets_an_error_after_max_attempts(tmp_path, clf, monkeypatch):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    _img(folder / "a.jpg")
    monkeypatch.setattr(Classifier, "classify", lambda self, path: (_ for _ in ()).throw(
        ImageDecodeError(path, "cannot read file (Permission denied)", "io", errno.EACCES)))
    monkeypatch.setattr("edge_runtime.watch.MAX_BACKOFF_S", 0.02)
    seen = []
    stop = threading.Event()
    t = threading.Thread(target=watch, args=(clf, WatchConfig(folder, log, interval=0.01, max_attempts=3), stop.is_set),
                         kwargs={"on_record": seen.append})
    t.start()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    t.join(5)
    assert [r["error"] for r in _rows(log)] == ["cannot read file (Permission denied) (after 3 attempts)"]


def test_torn_tail_is_cut_kept_aside_and_reported(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    _img(folder / "a.jpg", 1)
    watch(clf, WatchConfig(folder, log), once=True)
    with open(log, "ab") as f:
        f.write(b'{"path": "' + str(folder / "b.jpg").encode() + b'", "lab')  # killed mid-write
    _img(folder / "b.jpg", 2)
    notes = []
    assert watch(clf, WatchConfig(folder, log), once=True, on_note=notes.append).appended == 1
    rows = _rows(log)  # every line parses: the new record did not glue onto the torn one
    assert [Path(r["path"]).name for r in rows] == ["a.jpg", "b.jpg"]
    assert (tmp_path / "log.jsonl.torn").read_bytes().endswith(b'"lab\n') and "torn last line" in notes[0]


def test_damaged_byte_in_the_log_does_not_stop_the_watcher(tmp_path, clf, capsys):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    for i in range(3):
        _img(folder / f"{i}.jpg", i)
    watch(clf, WatchConfig(folder, log), once=True)
    data = bytearray(log.read_bytes())
    second = data.index(b"\n") + 5
    data[second] = 0xFF  # one bad byte in the second record
    log.write_bytes(bytes(data))
    rc = main(["watch", str(folder), "-o", str(log), "--once", "--model", MODEL, "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 0 and "skipped 1 damaged line" in err
    assert len(log.read_bytes().splitlines()) == 4  # only the damaged record's image was redone


def test_torn_csv_row_loses_only_that_row(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.csv"
    folder.mkdir()
    for i in range(4):
        _img(folder / f"{i}.jpg", i)
    watch(clf, WatchConfig(folder, log), once=True)
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = lines[2][:10] + '"unterminated quote\n'  # the row for 1.jpg is damaged
    log.write_text("".join(lines))
    notes = []
    assert watch(clf, WatchConfig(folder, log), once=True, on_note=notes.append).appended == 1
    assert "skipped 1 damaged line" in notes[0]
    assert sorted(Path(p).name for p in logged_paths(log)) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]


def test_non_utf8_name_with_csv_log_restarts_cleanly(tmp_path, capsys):
    folder, log = tmp_path / "in", tmp_path / "log.csv"
    folder.mkdir()
    _img(Path(os.fsdecode(os.fsencode(folder) + b"/\xe9t\xe9.jpg")))
    argv = ["watch", str(folder), "-o", str(log), "--once", "--model", MODEL, "--threads", "1"]
    assert main(argv) == 0 and main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(log.read_text(encoding="utf-8"))))
    assert len(rows) == 1 and rows[0]["path"].endswith("\\xe9t\\xe9.jpg") and rows[0]["path_bytes_b64"]


def test_second_watcher_on_one_log_is_refused(tmp_path, capsys, monkeypatch):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    with Ledger(log):
        with pytest.raises(LogLockedError):
            Ledger(log)
        monkeypatch.setattr("edge_runtime.cli._classifier", lambda args: pytest.fail("model loaded"))
        rc = main(["watch", str(folder), "-o", str(log), "--once", "--model", MODEL])
    assert rc == 2 and "in use by another watcher" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["0", "-1", "nan"])
def test_bad_interval_is_refused_before_anything_runs(tmp_path, capsys, interval):
    with pytest.raises(SystemExit) as exc:
        main(["watch", str(tmp_path), "-o", str(tmp_path / "l.jsonl"), "--interval", interval])
    assert exc.value.code == 2 and "busy loop" in capsys.readouterr().err


def test_log_named_like_an_image_is_refused(tmp_path, capsys):
    rc = main(["watch", str(tmp_path), "-o", str(tmp_path / "scan.jpg"), "--model", MODEL])
    assert rc == 2 and "must be a .jsonl or .csv" in capsys.readouterr().err


def test_idle_scans_relist_nothing_until_something_changes(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i in range(50):
        (folder / "sub" / f"{i}.jpg").write_bytes(b"x")
    for d in (folder, folder / "sub"):
        _age(d, 10)
    index = FolderIndex(folder, recursive=True)
    assert len(index.scan()) == 50 and index.listed == 2
    assert len(index.scan()) == 50 and index.listed == 0 and not index.fresh  # idle: no listing
    (folder / "sub" / "new.jpg").write_bytes(b"x")
    assert len(index.scan()) == 51 and index.listed == 1 and folder / "sub" / "new.jpg" in index.fresh


def test_idle_watch_stats_no_finished_file(tmp_path, clf, monkeypatch):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    for i in range(5):
        _img(folder / f"{i}.jpg", i)
    _age(folder, 10)
    stats = []
    real_stat = Path.stat

    def counting_stat(self, *a, **kw):
        if self.parent == folder:
            stats.append(self.name)
        return real_stat(self, *a, **kw)

    polls = []

    def stop() -> bool:
        polls.append(len(stats))
        return len(polls) >= 6

    monkeypatch.setattr(Path, "stat", counting_stat)
    watch(clf, WatchConfig(folder, log, interval=0.01), stop)
    assert len(_rows(log)) == 5
    assert polls[-1] == polls[-2] == polls[-3]  # once done, polls stat no file at all


def test_in_place_rewrite_is_caught_by_the_periodic_full_scan(tmp_path, clf):
    folder, log = tmp_path / "in", tmp_path / "log.jsonl"
    folder.mkdir()
    path = folder / "a.jpg"
    path.write_bytes(_jpeg(1))
    _age(folder, 10)
    seen = []
    stop = threading.Event()
    cfg = WatchConfig(folder, log, interval=0.02, rescan_s=0.3)
    t = threading.Thread(target=watch, args=(clf, cfg, stop.is_set), kwargs={"on_record": seen.append})
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        folder_mtime = folder.stat().st_mtime_ns
        with open(path, "r+b") as f:  # same inode, same folder entry: only a full scan sees it
            f.write(_jpeg(2))
            f.truncate()
        _age(path, -5)
        assert folder.stat().st_mtime_ns == folder_mtime
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(5)
    rows = _rows(log)
    assert len(rows) == 2 and rows[0]["file_key"] != rows[1]["file_key"]
