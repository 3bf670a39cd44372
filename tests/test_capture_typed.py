"""The capture reader's typed fast path (msgspec) against the definition it stands in for.

The reader decodes most lines with `capture.typed_record_decoder` and the live pass most default
responses with a typed decoder; anything those refuse goes through `check_record` (on orjson's
parse) / orjson + response_path. These tests hold the fast path to the definition: it may refuse
more, never accept more, and when both accept they read the same values; and a pass over mixed
traffic equals the metric computed from the definition alone (`parse_line`, orjson, accumulate).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import orjson
import pytest

from diversity_monitor.capture import record as capture
from diversity_monitor.capture.reader import _catalog_response_decoder, _DefaultResponse, live_diversity
from diversity_monitor.capture.record import MalformedRecord
from diversity_monitor.local.capture_writer import CaptureWriter
from diversity_monitor.measures.metrics import CatalogIndex, accumulate
from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH, compile_response_path

T0 = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
CATALOG = {f"a{i}": ["sport", "politics", "culture", "science"][i % 4] for i in range(24)}
GOOD = {
    "captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "data": '{"k": 3}',
                          "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "eyJhIjogMX0=",
                           "encoding": "BASE64"},
    },
    "eventMetadata": {"eventId": "e1", "inferenceId": "web-1", "inferenceTime": "2024-05-01T10:00:00Z",
                      "customAttributes": "c=1"},
    "eventVersion": "0",
}
REPLACEMENTS = (None, 7, 1.5, "x", [], {}, True, "INPUT", "OUTPUT", "JSON", "BASE64", "2024-05-01T10:00:00Z")


def _mutations(node, path=()):
    if isinstance(node, dict):
        yield path, "extra-member"
        for key, value in node.items():
            yield path + (key,), "delete"
            for replacement in REPLACEMENTS:
                yield path + (key,), replacement
            yield from _mutations(value, path + (key,))


def _apply(record, path, change):
    copy = json.loads(json.dumps(record))
    node = copy
    for key in path[:-1] if change != "extra-member" else path:
        node = node[key]
    if change == "extra-member":
        node["unexpected"] = 1
    elif change == "delete":
        del node[path[-1]]
    else:
        node[path[-1]] = change
    return copy


def _typed(line: bytes):
    """The record if the reader's fast path takes the line: typed decode, an output, a readable time."""
    try:
        record = capture.typed_record_decoder().decode(line)
        capture.parse_inference_time(record.eventMetadata.inferenceTime)
    except (*capture.TYPED_DECODE_ERRORS, MalformedRecord):
        return None
    return record if record.captureData.endpointOutput is not None else None


def test_typed_decode_never_accepts_what_the_checked_path_refuses():
    accepted = refused = 0
    outcomes = set()
    for path, change in _mutations(GOOD):
        line = orjson.dumps(_apply(GOOD, path, change))
        typed = _typed(line)
        try:
            checked, moment = capture.check_record(capture.load_line(line))
        except MalformedRecord as error:
            assert typed is None, (path, change)
            outcomes.add(error.kind)
            continue
        outcomes.add("valid")
        if typed is None:
            refused += 1  # valid, but left to the checked path (e.g. an extra member, no output)
            continue
        accepted += 1
        assert typed == checked, (path, change)  # the same Structs, member for member
        assert capture.parse_inference_time(typed.eventMetadata.inferenceTime) == moment
    assert accepted and refused
    assert {"valid", "missing-field", "bad-field-type", "bad-field-value", "unknown-encoding", "bad-timestamp",
            "unsupported-version"} <= outcomes


@pytest.mark.parametrize("members", [
    b'"eventVersion": "0", "eventVersion": "1"',  # the last one counts in orjson: malformed
    b'"eventVersion": "1", "eventVersion": "0"',  # valid for orjson; msgspec refuses the "1" on sight
    b'"eventVersion": "0", "eventVersion": "0"',
])
def test_duplicate_members_never_make_the_typed_decode_accept_more(members):
    line = orjson.dumps(GOOD)[:-1].replace(b'"eventVersion":"0"', members) + b"}"
    try:
        checked = capture.check_record(capture.load_line(line))[0]
    except MalformedRecord:
        checked = None
    typed = _typed(line)
    assert typed == checked or (typed is None and checked is not None)


@pytest.mark.parametrize("line", [
    b"", b"\n", b"[1]", b"{", b'{"captureData": {}, "eventMetadata": {}, "eventVersion": "0"}',
    orjson.dumps(GOOD).replace(b'"e1"', b'"\\ud800"'),  # lone surrogate: not valid JSON text for orjson
    orjson.dumps(GOOD).replace(b'"e1"', b'"\xff"'),  # not UTF-8
    orjson.dumps(GOOD)[:-1] + b', "x": 1e400}',  # a number orjson refuses, in a member the checked path ignores
])
def test_typed_decode_refuses_what_orjson_refuses(line):
    with pytest.raises(MalformedRecord):
        capture.check_record(capture.load_line(line))
    assert _typed(line) is None


RESPONSES = [
    '{"recommendations": [{"article_id": "a1", "score": 0.5}, {"article_id": "a2", "x": [1, {"y": null}]}]}',
    '{"recommendations": [], "model_version": "v"}',
    '{"recommendations": [{"article_id": "a", "article_id": "b"}]}',
    '{"recommendations": {}}', '{"recommendations": [{"article_id": 7}]}', '{"error": 1}', '[1]',
    '{"recommendations": ["a1"]}', '{"recommendations": [{"id": "a1"}]}',
    # numbers orjson refuses (they overflow a double) wherever they sit, skipped or not
    '{"recommendations": [{"article_id": "a", "score": 1e400}]}',
    '{"recommendations": [{"article_id": "a"}], "model_version": "v", "latency": -2e308}',
    '{"recommendations": [{"article_id": "a", "debug": [1' + "0" * 400 + ']}]}',
    '{"recommendations": [{"article_id": "a", "score": 1e-400}], "model_version": null}',  # underflow is 0.0
    '{"recommendations": [{"article_id": "a", "score": 12345678901234567890123}]}',
]


DECODERS = {
    "plain": msgspec.json.Decoder(_DefaultResponse),
    "catalog": _catalog_response_decoder(CatalogIndex({"a": "news", "a1": "sport", "a2": "news"})),
}


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("text", RESPONSES + [
    '{"recommendations": [{"article_id": "a1"}, {"article_id": "not-in-catalog"}]}',
    '{"recommendations": [{"article_id": "not-in-catalog", "article_id": "a2"}]}',
])
def test_default_response_types_never_accept_more_than_the_path(text, decoder):
    extract = compile_response_path(DEFAULT_RESPONSE_PATH)
    try:
        expected = extract(orjson.loads(text))
    except ValueError:
        expected = None
    try:
        typed = [item.article_id for item in DECODERS[decoder].decode(text).recommendations]
    except capture.TYPED_DECODE_ERRORS:
        typed = None
    assert typed == expected or (typed is None and expected is not None), text
    if decoder == "catalog" and typed is not None:  # the catalog's own strings come back
        assert all(article_id in {"a", "a1", "a2"} for article_id in typed)


def test_a_response_orjson_refuses_is_unreadable_on_both_paths(tmp_path):
    """{"score": 1e400}: refused by orjson, so unreadable, whether the typed decoder sees it or not."""
    w = CaptureWriter(str(tmp_path), "ep", "v", {"Output"}, ["application/json"], [], 100, random.Random(1))
    for index, body in enumerate([b'{"recommendations":[{"article_id":"a1","score":1e400}]}',
                                  b'{"recommendations":[{"article_id":"a1","score":0.5}],"extra":1e400}',
                                  b'{"recommendations":[{"article_id":"a1","score":0.5}]}']):
        w.capture(b"", None, body, "application/json", T0 + timedelta(seconds=index), f"web-{index}")
    w.flush()
    stats = live_diversity(str(tmp_path), CATALOG, k=1)
    assert (stats.records_read, stats.live_lists, stats.unreadable_responses.count) == (3, 1, 2)
    assert [line for _, line, _ in stats.unreadable_responses.entries] == [1, 2]
    assert all("infinity" in reason for _, _, reason in stats.unreadable_responses.entries)


def test_pass_over_mixed_traffic_equals_the_checked_path(tmp_path):
    w = CaptureWriter(str(tmp_path), "ep", "v", {"Input", "Output"}, ["application/json"], ["text/csv"], 100,
                      random.Random(1), flush_at_records=50)
    rng = random.Random(2)
    for index in range(180):
        ids = rng.sample(sorted(CATALOG), 5) + (["not-in-catalog"] if index % 9 == 0 else [])
        body = orjson.dumps({"recommendations": [{"article_id": a, "score": 0.1} for a in ids]})
        output_type = [None, "application/json", "application/json", "text/plain"][index % 4]  # some base64
        request_type = "application/json" if index % 5 else None
        w.capture(b'{"k": 5}', request_type, body, output_type, T0 + timedelta(seconds=index),
                  f"diversity-replay-{index}" if index % 6 == 0 else f"web-{index}")
    files = w.flush()
    # Lines the typed decoder refuses but the checked path accepts: an extra member, no output.
    first = Path(files[0])
    lines = first.read_bytes().splitlines()
    extra = orjson.loads(lines[1])
    extra["eventMetadata"]["traceId"] = "t"
    no_output = orjson.loads(lines[2])
    del no_output["captureData"]["endpointOutput"]
    first.write_bytes(b"\n".join([lines[0], orjson.dumps(extra), orjson.dumps(no_output), *lines[3:]]) + b"\n")

    events = [capture.parse_line(line) for path in sorted(tmp_path.rglob("*.jsonl"))
              for line in path.read_bytes().splitlines()]
    live = [[item["article_id"] for item in orjson.loads(event.output_payload.body)["recommendations"]]
            for event in events if event.output_payload is not None and event.inference_id.startswith("web-")]
    for workers in (1, 2):
        stats = live_diversity(str(tmp_path), CATALOG, k=5, workers=workers)
        assert stats.accumulator == accumulate(live, CATALOG, 5)
        assert (stats.records_read, stats.without_output, stats.malformed.count) == (180, 1, 0)
