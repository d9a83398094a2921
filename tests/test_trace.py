"""Tests of rtclab.trace: the event record, the tidy frame and its CSV round trip."""

from __future__ import annotations

import pandas as pd
import pytest

import rtclab
from rtclab import trace as trace_module
from rtclab.trace import ACTORS, COLUMNS, KINDS, Trace, capture_events, empty_frame, load, save

TEXT = ("name", "value", "prev", "ref", "detail")

TRICKY = [
    "plain",
    "",
    "comma, inside",
    'double "quotes" and \'single\'',
    "line one\nline two",
    "crlf\r\nline",
    "lone\rcarriage return",
    "unicode: é ü 中文 🎥 …",
    "NaN",
    "NA",
    "None",
    "null",
    "007",
    "1e5",
    "  leading and trailing spaces  ",
    "# looks like a comment",
    "tab\tseparated",
    "a=candidate:1 1 udp 2130706431 192.0.2.2 50000 typ host",
]


def _check_schema(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(COLUMNS)
    assert df["t_ms"].dtype == "float64"
    for col, cats in (("actor", ACTORS), ("kind", KINDS)):
        assert isinstance(df[col].dtype, pd.CategoricalDtype)
        assert list(df[col].cat.categories) == list(cats)
    for col in TEXT:
        assert df[col].dtype == pd.StringDtype(), col
        assert not df[col].isna().any(), col


def test_columns_in_documented_order() -> None:
    """COLUMNS, ACTORS and KINDS are the vocabularies DESIGN section 3 documents."""
    assert COLUMNS == ("t_ms", "actor", "kind", "name", "value", "prev", "ref", "detail")
    assert ACTORS == ("caller", "callee", "channel", "user", "network")
    assert KINDS == ("state", "call", "ice", "signal", "media", "user", "error", "net")


def test_frame_schema_and_dtypes(trace: Trace) -> None:
    """A frame has the columns in order, float t_ms, categorical actor/kind and string text columns."""
    trace.record("caller", "state", "signalingState", "have-local-offer", prev="stable")
    trace.record("channel", "signal", "video-offer", "sent", ref="m1")
    trace.record("callee", "error", "addIceCandidate", "InvalidStateError", detail="no remote description")
    df = trace.frame()
    _check_schema(df)
    assert df["actor"].tolist() == ["caller", "channel", "callee"]
    assert df["prev"].tolist() == ["stable", "", ""]


def test_empty_frame_has_the_schema() -> None:
    """An empty trace and empty_frame() give zero rows with the full schema."""
    for df in (empty_frame(), Trace(clock=lambda: 0.0).frame()):
        assert len(df) == 0
        _check_schema(df)


def test_missing_text_is_empty_string_never_nan(trace: Trace) -> None:
    """Text fields left out or given as None become '' (not NaN or 'None' missing values)."""
    trace.record("user", "user", "click")
    df = trace.frame()
    for col in ("value", "prev", "ref", "detail"):
        assert df.loc[0, col] == ""
        assert not pd.isna(df.loc[0, col])


def test_t_ms_is_milliseconds_since_first_clock_reading() -> None:
    """Time zero is the trace's creation; t_ms is milliseconds from it, rounded to the microsecond."""
    readings = iter([100.0, 100.0015, 100.25])
    tr = Trace(clock=lambda: next(readings))
    tr.record("caller", "call", "createOffer", "ok")
    tr.record("caller", "call", "setLocalDescription", "ok")
    assert tr.frame()["t_ms"].tolist() == [1.5, 250.0]


def test_sort_by_time_is_stable(trace: Trace) -> None:
    """Rows are sorted by t_ms and rows with equal times keep their recording order."""
    for t, name in [(5.0, "a"), (1.0, "b"), (5.0, "c"), (1.0, "d"), (3.0, "e"), (1.0, "f")]:
        trace.record("caller", "call", name, "ok", t_ms=t)
    df = trace.frame()
    assert df["name"].tolist() == ["b", "d", "f", "e", "a", "c"]
    assert df.index.tolist() == list(range(6))


def test_save_load_round_trip_with_tricky_text(tmp_path, trace: Trace) -> None:
    """save() then load() gives an identical frame (values and dtypes), whatever the text holds."""
    for i, text in enumerate(TRICKY):
        trace.record(ACTORS[i % len(ACTORS)], KINDS[i % len(KINDS)], text, text, prev=text, ref=text, detail=text)
    trace.record("caller", "call", "fractional", "ok", t_ms=1234.567)
    frame = trace.frame()
    path = save(frame, tmp_path / "sub" / "run.csv", meta={"flow": "basic", "seed": 3})
    back = load(path)
    assert back.equals(frame)
    assert back.dtypes.equals(frame.dtypes)
    assert back["detail"].tolist() == frame["detail"].tolist()
    assert back.attrs["meta"] == {"flow": "basic", "seed": 3}


def test_round_trip_of_empty_frame(tmp_path) -> None:
    """An empty frame survives save/load with its schema."""
    back = load(save(empty_frame(), tmp_path / "empty.csv"))
    assert back.equals(empty_frame())
    _check_schema(back)


def test_load_plain_csv_without_header_line(tmp_path, trace: Trace) -> None:
    """A CSV without the '# rtclab' metadata line (e.g. from to_csv) loads too, with empty meta."""
    trace.record("callee", "media", "first-frame", "video", ref="callee:video")
    frame = trace.frame()
    path = tmp_path / "plain.csv"
    frame.to_csv(path, index=False)
    back = load(path)
    assert back.equals(frame)
    assert back.attrs["meta"] == {}


def test_load_rejects_a_file_that_is_not_an_event_file(tmp_path) -> None:
    """load() raises ValueError naming the missing columns."""
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing columns"):
        load(path)


def test_capture_events_sees_only_rows_inside_the_block(trace: Trace) -> None:
    """capture_events yields the rows recorded inside the with-block and stops listening after it."""
    trace.record("caller", "call", "before", "ok")
    with capture_events(trace) as rows:
        trace.record("caller", "call", "inside", "ok", ref="r1")
        trace.record("callee", "state", "connectionState", "connected", prev="connecting")
    trace.record("caller", "call", "after", "ok")
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("caller", "inside", "ok"),
        ("callee", "connectionState", "connected"),
    ]
    assert rows[1][5] == "connecting"
    assert rtclab.capture_events is capture_events


def test_a_broken_listener_never_breaks_recording(trace: Trace) -> None:
    """A listener that raises is dropped and recording goes on."""
    calls = []

    def broken(row):
        calls.append(row)
        raise RuntimeError("listener bug")

    trace.subscribe(broken)
    trace.record("caller", "call", "one", "ok")
    trace.record("caller", "call", "two", "ok")
    assert len(calls) == 1
    assert trace.frame()["name"].tolist() == ["one", "two"]


def test_recording_does_no_pandas_work(monkeypatch, trace: Trace) -> None:
    """100k records are plain tuple appends: recording works with pandas' DataFrame disabled."""

    def no_pandas(*args, **kwargs):
        raise AssertionError("pandas used while recording")

    monkeypatch.setattr(trace_module.pd, "DataFrame", no_pandas)
    for i in range(100_000):
        trace.record("caller", "ice", "pair", "waiting", ref=str(i))
    monkeypatch.undo()
    assert len(trace) == 100_000
    assert all(type(r) is tuple for r in trace.rows[:10])
    df = trace.frame()
    assert len(df) == 100_000
    assert df["ref"].iloc[-1] == "99999"


def test_next_id_and_candidate_refs_are_deterministic(trace: Trace) -> None:
    """Ids count per prefix, and a candidate keeps one ref with or without the a= prefix."""
    assert [trace.next_id("m"), trace.next_id("m"), trace.next_id("x")] == ["m1", "m2", "x1"]
    line = "candidate:1 1 udp 2130706431 192.0.2.2 50000 typ host"
    assert trace.candidate_ref("caller", line) == ""
    ref = trace.candidate_ref("caller", line, create=True)
    assert ref == "caller:c1"
    assert trace.candidate_ref("caller", "a=" + line) == ref
    assert trace.find_candidate_ref(line) == ref
    assert trace.candidate_ref("callee", line + "0", create=True) == "callee:c1"
