"""Tests of rtclab.load_trace: saved runs, webrtc-internals and rtcstats dumps through one front door.

The dumps in ``tests/data/browser/`` are real: two peer connections of one page
in headless Chromium 156, downloaded from chrome://webrtc-internals as the
"webrtc-internals dump" (JSON, and gzip for ``basic``) and the "rtcstats dump"
(``tests/data/browser/make.py`` regenerates them). ``tests/data/traces/`` holds
hand-written files in the shapes Chromium no longer makes: an older Chrome's
dump (``time`` strings, camel-case types, ``key: value`` strings, three peer
connections) and an rtcstats-js file (numeric methods and stats, bare states,
tracking ids, delta-compressed stats, a description with its unchanged sections
left out).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import rtclab
from rtclab.trace import COLUMNS, empty_frame
from rtclab.traces import TraceFormatError, anonymize_frame, load_trace

DATA = Path(__file__).resolve().parent / "data"
BROWSER = DATA / "browser"
HAND = DATA / "traces"
REPO = Path(__file__).resolve().parent.parent


def _seq(df, actor, name):
    return df[(df.actor == actor) & (df.kind == "state") & (df.name == name)].value.tolist()


@pytest.mark.parametrize("name", ["basic.internals.json", "basic.internals.json.gz", "basic.rtcstats.jsonl"])
def test_chromium_dumps_of_one_call_in_every_shape(name):
    """Chromium's JSON, gzip and rtcstats dumps read into the frame schema plus a pc column, roles by description."""
    df = load_trace(BROWSER / name)
    assert tuple(df.columns) == (*COLUMNS, "pc")
    assert df[list(COLUMNS)].dtypes.equals(empty_frame().dtypes)
    assert df.t_ms.is_monotonic_increasing and df.t_ms.min() >= 0
    meta = df.attrs["meta"]
    assert meta["source"] == ("rtcstats" if "rtcstats" in name else "webrtc-internals")
    assert meta["gzip"] == (name.endswith(".gz") or "rtcstats" in name)  # Chromium always gzips the rtcstats export
    assert meta["peers"] == {"8-1": "caller", "8-2": "callee"}
    assert set(df.pc) == {"8-1", "8-2"} and (df[df.pc == "8-1"].actor == "caller").all()
    assert _seq(df, "caller", "signalingState") == ["have-local-offer", "stable"]
    assert _seq(df, "callee", "signalingState") == ["have-remote-offer", "stable"]
    for side in ("caller", "callee"):
        assert _seq(df, side, "iceConnectionState") == ["checking", "connected"]
        assert _seq(df, side, "connectionState") == ["connecting", "connected"]
    # each gathered candidate is added by the other peer connection under the same ref
    gathered = df[(df.kind == "ice") & (df.value == "gathered")]
    added = df[(df.kind == "ice") & (df.value == "added")]
    assert len(gathered) >= 2 and set(added.ref) <= set(gathered.ref) and len(added)
    assert any("signaling" in item for item in meta["lacks"])
    assert rtclab.compute_metrics(df)["candidates_added"] == len(set(added.ref))


def test_internals_and_rtcstats_of_the_same_call_agree():
    """Both exports of one Chromium call give the same state sequences, candidates and failures."""
    a = load_trace(BROWSER / "early-candidates.internals.json")
    b = load_trace(BROWSER / "early-candidates.rtcstats.jsonl")
    for side in ("caller", "callee"):
        for machine in ("signalingState", "iceGatheringState", "iceConnectionState", "connectionState"):
            assert _seq(a, side, machine) == _seq(b, side, machine)
    key = ["actor", "kind", "name", "value", "ref"]
    ice_a = a[a.kind.isin(["ice", "error"]) & (a.name != "selected-pair")][key].reset_index(drop=True)
    ice_b = b[b.kind.isin(["ice", "error"]) & (b.name != "selected-pair")][key].reset_index(drop=True)
    assert ice_a.equals(ice_b)


def test_addicecandidate_failure_is_rejected_not_added():
    """Chromium logs addIceCandidate when called and only failures again: a failed one is rejected, once."""
    df = load_trace(BROWSER / "early-candidates.rtcstats.jsonl")
    callee = df[(df.actor == "callee") & (df.kind == "ice") & (df.name == "candidate") & (df.value != "gathered")]
    assert callee.value.tolist() == ["rejected", "rejected"]
    assert callee.ref.tolist() == ["caller:c1", "caller:c2"]
    errors = df[df.kind == "error"]
    assert errors.value.tolist() == ["InvalidStateError", "InvalidStateError"]  # Chromium 156's error name
    assert errors.detail.str.contains("remote description was null").all()
    assert (df[(df.actor == "caller") & (df.kind == "ice")].value == "added").any()


def test_stats_give_first_frame_and_selected_pair():
    """getStats samples become a first-frame row (frames decoded) and, in rtcstats, the selected pair."""
    for name in ("early-candidates.internals.json", "early-candidates.rtcstats.jsonl"):
        df = load_trace(BROWSER / name)
        ff = df[(df.kind == "media") & (df.name == "first-frame")]
        assert ff.actor.tolist() == ["callee"] and ff.value.tolist() == ["video"]
        connected = df[(df.actor == "callee") & (df.name == "connectionState") & (df.value == "connected")].t_ms.iloc[0]
        assert ff.t_ms.iloc[0] > connected
    pair = df[df.name == "selected-pair"]
    assert set(pair.actor) == {"caller", "callee"}
    assert dict(zip(pair.actor, pair.value))["callee"] == "host/prflx"  # its remote candidates were rejected


def test_forgotten_candidates_stay_new_in_chromium():
    """With no icecandidate handler Chromium's ICE states never leave new: no state rows at all."""
    df = load_trace(BROWSER / "forgot-candidates.rtcstats.jsonl")
    assert _seq(df, "caller", "iceConnectionState") == [] and _seq(df, "callee", "connectionState") == []
    assert not ((df.kind == "ice") & (df.value == "added")).any()


def test_older_chrome_dump_by_hand():
    """time strings, camel case, bare states, key: value strings and three peer connections are read."""
    df = load_trace(HAND / "legacy-chrome74.internals.json")
    meta = df.attrs["meta"]
    assert meta["peers"] == {"1234-1": "caller", "1234-2": "callee", "1234-3": "caller"}
    assert _seq(df, "caller", "signalingState") == ["have-local-offer", "stable"]
    assert _seq(df, "callee", "iceConnectionState") == ["checking", "failed"]
    assert df[df.name == "createOffer"].detail.tolist() == ["offer m=[audio,video] candidates=0"] * 2
    assert df[df.name == "createOffer"].pc.tolist() == ["1234-1", "1234-3"]
    tracks = df[(df.kind == "media") & (df.name == "track")]
    assert list(zip(tracks.actor, tracks.value)) == [("callee", "audio"), ("callee", "video")]
    assert df[(df.kind == "call") & (df.name == "addStream")].actor.tolist() == ["caller"]
    added = df[(df.kind == "ice") & (df.value == "added")]
    assert sorted(added.ref) == ["callee:c1", "caller:c1"]
    assert not (df.name == "iceConnectionState").groupby(df.actor).sum().gt(2).any()  # legacy duplicates dropped
    assert df.t_ms.iloc[-1] == 16020.0


def test_rtcstats_js_dump_by_hand():
    """Compressed methods, bare states, tracking ids, stats deltas and compressed SDP sections are undone."""
    df = load_trace(HAND / "rtcstats-js-hangup.jsonl")
    meta = df.attrs["meta"]
    assert meta["peers"] == {"PC_0": "caller"} and meta["file_format"] == 3
    assert any("the other peer" in x for x in meta["lacks"])
    assert _seq(df, "caller", "iceConnectionState") == ["checking", "connected", "disconnected"]
    sld = df[(df.kind == "call") & (df.name == "setLocalDescription")]
    assert sld.detail.tolist() == ["offer m=[video] candidates=0"]  # sections restored from createOffer's
    ice = df[(df.kind == "ice") & (df.name == "candidate")]
    assert ice.value.tolist() == ["gathered", "gathered", "end", "added", "rejected", "added"]
    assert ice.ref.iloc[-1] == "remote:end"
    err = df[df.kind == "error"]
    assert err.value.tolist() == ["OperationError"] and "candidate:4" in df[(df.name == "addIceCandidate") & (df.value == "error")].detail.iloc[0]
    ff = df[df.name == "first-frame"]
    assert ff.detail.str.contains("framesDecoded 12").all()  # the second, delta-compressed report
    assert df[df.name == "selected-pair"].value.tolist() == ["srflx/host"]
    assert df[df.name == "close"].t_ms.iloc[0] - df[df.value == "disconnected"].t_ms.iloc[0] == 801.0


def test_saved_rtclab_run_through_the_front_door(tmp_path):
    """A CSV from Run.save reads back identical to rtclab.load, with an empty pc column, gzip too."""
    src = REPO / "data" / "traces" / "basic-lan.csv"
    df = load_trace(src)
    assert df[list(COLUMNS)].equals(rtclab.load(src))
    assert (df.pc == "").all() and df.attrs["meta"]["source"] == "rtclab"
    gz = tmp_path / "run.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert load_trace(gz)[list(COLUMNS)].equals(rtclab.load(src))


def test_anonymize_is_consistent():
    """Every address gets one stand-in everywhere; loopback stays; refs still link candidates."""
    plain = load_trace(HAND / "rtcstats-js-hangup.jsonl")
    anon = load_trace(HAND / "rtcstats-js-hangup.jsonl", anonymize=True)
    text = " ".join(anon.detail)
    for ip in ("192.168.1.20", "203.0.113.7", "10.0.0.5", "198.51.100.9"):
        assert ip in " ".join(plain.detail) and ip not in text
    gathered = anon[anon.value == "gathered"].detail.tolist()
    host = gathered[0].split()[4]
    assert f"raddr {host} " in gathered[1]  # the srflx's base is the host's stand-in
    assert anon.attrs["meta"]["anonymized"]["ipv4"] == 4
    assert anon[["t_ms", "actor", "kind", "name", "ref"]].equals(plain[["t_ms", "actor", "kind", "name", "ref"]])
    loop = load_trace(BROWSER / "basic.rtcstats.jsonl", anonymize=True)
    assert loop[loop.value == "gathered"].detail.str.contains(" 127.0.0.1 ").all()
    run_frame = rtclab.load(REPO / "data" / "traces" / "basic-nat.csv")
    assert "203.0.113.1" not in " ".join(anonymize_frame(run_frame).detail)


# --------------------------------------------------------------------------- bad files


def _bad(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)
    return info.value


def test_not_a_trace(tmp_path):
    """Text, binary and other JSON are refused with one error naming what was expected."""
    err = _bad(tmp_path / "notes.txt", "hello\nworld\n")
    assert err.line == 1 and "webrtc-internals" in str(err) and "rtcstats" in str(err)
    err = _bad(tmp_path / "img.png", b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert "not text" in str(err) or "not a trace" in str(err)
    err = _bad(tmp_path / "other.json", json.dumps({"foo": 1}))
    assert "PeerConnections" in str(err)
    with pytest.raises(TraceFormatError, match="cannot read"):
        load_trace(tmp_path / "missing.json")


def test_truncated_files_name_the_line(tmp_path):
    """A cut JSON dump, a cut gzip and a cut rtcstats file each give one error with the line."""
    text = (BROWSER / "basic.internals.json").read_text()
    err = _bad(tmp_path / "cut.json", text[: len(text) // 2])
    assert "truncated" in str(err) and err.line == text[: len(text) // 2].count("\n") + 1
    broken = text.replace('"updateLog"', '"updateLog" oops', 1)
    err = _bad(tmp_path / "broken.json", broken)
    assert "not valid JSON" in str(err) and err.line == text[: text.index('"updateLog"')].count("\n") + 1
    raw = (BROWSER / "basic.internals.json.gz").read_bytes()
    err = _bad(tmp_path / "cut.json.gz", raw[: len(raw) // 2])
    assert "gzip" in str(err) and "truncated" in str(err) and err.line >= 1
    lines = gzip.decompress((BROWSER / "basic.rtcstats.jsonl").read_bytes()).decode().split("\n")
    cut = "\n".join(lines[:20]) + "\n" + lines[20][:30]
    err = _bad(tmp_path / "cut.jsonl", cut)
    assert err.line == 21 and "cut off" in str(err)


def test_bad_rtcstats_headers_and_rows(tmp_path):
    """Wrong first line, missing or old file format, and malformed rows are refused at their line."""
    assert _bad(tmp_path / "a.jsonl", "RTCStatsDump\n").line == 2
    assert "format 2" in str(_bad(tmp_path / "b.jsonl", 'RTCStatsDump\n{"fileFormat":2}\n'))
    err = _bad(tmp_path / "c.jsonl", 'RTCStatsDump\n{"fileFormat":3}\n["create","PC_0",{},1]\n{oops\n')
    assert err.line == 4 and "not JSON" in str(err)
    err = _bad(tmp_path / "d.jsonl", 'RTCStatsDump\n{"fileFormat":3}\n["create","PC_0",{},"late"]\n')
    assert err.line == 3 and "number last" in str(err)
    assert "before 3" in str(_bad(tmp_path / "e.jsonl", '["create","PC_0",{},1]\n'))
    assert "without any peer connection" in str(_bad(tmp_path / "f.jsonl", 'RTCStatsDump\n{"fileFormat":3}\n[39,null,{},1]\n'))


def test_any_cut_gives_a_frame_or_one_clear_error(tmp_path):
    """Each fixture cut at ten places (and its gzip cut too) loads or raises TraceFormatError, nothing else."""
    files = [p for p in sorted(BROWSER.glob("*.*s*")) + sorted(HAND.glob("*")) if p.suffix != ".py"]
    outcomes = {"frame": 0, "error": 0}
    for src in files:
        raw = src.read_bytes()
        for k in range(1, 11):
            cut = tmp_path / f"{src.name}.{k}"
            cut.write_bytes(raw[: len(raw) * k // 11])
            try:
                load_trace(cut)
                outcomes["frame"] += 1
            except TraceFormatError as exc:
                assert str(cut) in str(exc)
                outcomes["error"] += 1
    assert outcomes["error"] > 0 and sum(outcomes.values()) == 10 * len(files)
