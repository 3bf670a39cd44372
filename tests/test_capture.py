"""Data capture: the format as AWS documents it, the writer, the streaming reader and capture-stats."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import orjson
import pytest

from diversity_monitor.aws.service_schema import RequestInvalid
from diversity_monitor.capture import record as capture
from diversity_monitor.capture.reader import (
    CaptureSourceError,
    MalformedLog,
    ReadCounts,
    iter_capture_records,
    live_diversity,
)
from diversity_monitor.capture.record import MalformedRecord, parse_line
from diversity_monitor.local.capture_writer import CaptureWriter
from diversity_monitor.measures.metrics import accumulate
from diversity_monitor.measures.response_path import compile_response_path
from diversity_monitor.setup import capture_check

ENDPOINT, VARIANT = "news-recommender", "AllTraffic"
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=timezone.utc)
CATALOG = {f"a{i}": ["sport", "politics", "culture", "science", "travel"][i % 5] for i in range(30)}
CLI = Path(sys.executable).with_name("diversity-monitor")


def writer(destination, *, options=("Input", "Output"), percentage=100, rng=None, **kwargs) -> CaptureWriter:
    return CaptureWriter(str(destination), ENDPOINT, VARIANT, set(options), ["application/json"], ["text/csv"],
                         percentage, rng or random.Random(0), **kwargs)


def response(ids) -> bytes:
    return orjson.dumps({"recommendations": [{"article_id": a, "score": 1.0} for a in ids], "model_version": "v1"})


def request(user="u1") -> bytes:
    return orjson.dumps({"user_id": user, "history": ["a1", "a2"], "k": 10})


def serve(w: CaptureWriter, ids, moment, inference_id="web-1") -> None:
    assert w.capture(request(), "application/json", response(ids), "application/json", moment, inference_id)


def capture_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


# --- the format --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "content_type, body, encoding",
    [
        ("application/json", b'{"user_id": "u1", "history": ["a1"]}', "JSON"),
        ("text/csv", b"69,0,153.7,109\n", "CSV"),
        ("text/csv; charset=utf-8", b"0.0254181120544672", "CSV"),  # parameters ignored, as in AWS's sample
        ("Application/JSON", b"[1, 2]", "JSON"),
        ("application/x-npy", b"\x93NUMPY\x01\x00\xff\xfe", "BASE64"),  # not configured: base64
        (None, b'{"no": "content type"}', "BASE64"),  # no content type: base64, observedContentType null
        ("application/json", b"\xff\xfe not utf-8", "BASE64"),  # cannot be a JSON string: stays lossless
    ],
)
def test_round_trip_every_encoding(tmp_path, content_type, body, encoding):
    w = writer(tmp_path)
    moment = T0 + timedelta(minutes=7, seconds=3, milliseconds=250)
    assert w.capture(body, content_type, body, content_type, moment, "web-42", "trace=abc")
    [uri] = w.flush()
    line = Path(uri).read_bytes().splitlines()[0]
    raw = orjson.loads(line)
    assert raw["captureData"]["endpointInput"] == {
        "observedContentType": content_type, "mode": "INPUT", "encoding": encoding,
        "data": body.decode() if encoding != "BASE64" else base64.b64encode(body).decode(),
    }
    assert raw["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    [event] = list(iter_capture_records(str(tmp_path), malformed=MalformedLog()))
    for payload in (event.input_payload, event.output_payload):
        assert (payload.body, payload.content_type, payload.encoding) == (body, content_type, encoding)
    assert (event.inference_id, event.custom_attributes) == ("web-42", "trace=abc")
    assert event.inference_time == moment.replace(microsecond=0)  # second precision, as AWS writes it
    assert event.location == (uri, 1)


def test_written_line_has_the_documented_shape(tmp_path):
    w = writer(tmp_path)
    serve(w, ["a1", "a2"], T0)
    w.capture(b"x", None, b"y", None, T0, None)  # no InferenceId: none recorded
    w.flush()
    lines = [orjson.loads(line) for path in capture_files(tmp_path) for line in path.read_bytes().splitlines()]
    first, second = lines
    assert list(first) == ["captureData", "eventMetadata", "eventVersion"] and first["eventVersion"] == "0"
    assert list(first["captureData"]) == ["endpointInput", "endpointOutput"]
    assert list(first["captureData"]["endpointInput"]) == ["observedContentType", "mode", "data", "encoding"]
    assert list(first["eventMetadata"]) == ["eventId", "inferenceId", "inferenceTime"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", first["eventMetadata"]["eventId"])
    assert first["eventMetadata"]["inferenceTime"] == "2024-05-01T10:00:00Z"
    assert "inferenceId" not in second["eventMetadata"]
    assert second["captureData"]["endpointInput"]["observedContentType"] is None


# Lines shaped exactly like AWS's documented examples: the "View Captured Data" sample of the
# data capture guide (CSV in, CSV out with a charset parameter) and a BASE64 input captured
# without a content type, with InferenceId and custom attributes.
AWS_CSV_LINE = (
    '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",'
    '"data":"69,0,153.7,109,194.0,105,256.1,114,14.1,6,1,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0\\n","encoding":"CSV"},'
    '"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT",'
    '"data":"0.0254181120544672","encoding":"CSV"}},'
    '"eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","inferenceTime":"2022-02-14T17:25:49Z"},'
    '"eventVersion":"0"}'
)
AWS_BASE64_LINE = (
    '{"captureData":{"endpointInput":{"observedContentType":null,"mode":"INPUT",'
    '"data":"eyJ1c2VyX2lkIjogInUwMDA0MiJ9","encoding":"BASE64"},'
    '"endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT",'
    '"data":"{\\"recommendations\\": [{\\"article_id\\": \\"a1\\"}, {\\"article_id\\": \\"a3\\"}]}","encoding":"JSON"}},'
    '"eventMetadata":{"eventId":"0d6f3e5a-1b2c-4d5e-8f90-123456789abc","inferenceId":"web-000042",'
    '"inferenceTime":"2022-02-14T17:25:06Z","customAttributes":"c000b4f9-df62-4c85-a0bf-7c525f9104a4"},'
    '"eventVersion":"0"}'
)


def test_aws_documented_lines(tmp_path):
    csv_event = parse_line(AWS_CSV_LINE)
    assert csv_event.input_payload.body.startswith(b"69,0,153.7") and csv_event.input_payload.encoding == "CSV"
    assert csv_event.output_payload == (b"0.0254181120544672", "text/csv; charset=utf-8", "CSV")
    assert csv_event.inference_id is None and csv_event.custom_attributes is None
    assert csv_event.inference_time == datetime(2022, 2, 14, 17, 25, 49, tzinfo=timezone.utc)

    b64_event = parse_line(AWS_BASE64_LINE.encode())
    assert b64_event.input_payload == (b'{"user_id": "u00042"}', None, "BASE64")
    assert b64_event.output_payload.json() == {"recommendations": [{"article_id": "a1"}, {"article_id": "a3"}]}
    assert (b64_event.inference_id, b64_event.custom_attributes) == ("web-000042", "c000b4f9-df62-4c85-a0bf-7c525f9104a4")

    hour = tmp_path / ENDPOINT / VARIANT / "2022/02/14/17"
    hour.mkdir(parents=True)
    (hour / "25-06-000-2f1b.jsonl").write_text(AWS_CSV_LINE + "\n" + AWS_BASE64_LINE + "\n")
    stats = live_diversity(str(tmp_path), CATALOG)
    assert (stats.records_read, stats.malformed.count, stats.live_lists) == (2, 0, 1)
    assert stats.unreadable_responses.count == 1  # the CSV model's output has no recommendations
    assert "payload" in stats.unreadable_responses.entries[0][2]
    assert stats.accumulator.diversity().histogram[2] == 1  # a1 sport, a3 science


def test_fields_the_monitor_does_not_read_take_any_json_value_and_capture_stats_names_the_shapes(tmp_path):
    """customAttributes as AWS's LLM-monitoring example types it (a list of strings), or any other
    JSON value; eventId absent; observedContentType a number: every record still counts, and
    capture-stats says which shapes it met. A field the monitor reads still has to be readable."""
    record = json.loads(AWS_BASE64_LINE)

    def edited(edit) -> str:
        copy = json.loads(AWS_BASE64_LINE)
        edit(copy)
        return json.dumps(copy)

    lines = [
        AWS_BASE64_LINE,
        edited(lambda r: r["eventMetadata"].update(customAttributes=["tenant=eu", "ab=7"])),
        edited(lambda r: r["eventMetadata"].update(customAttributes={"tenant": "eu"})),
        edited(lambda r: r["eventMetadata"].update(customAttributes=7)),
        edited(lambda r: r["eventMetadata"].pop("eventId")),
        edited(lambda r: r["captureData"]["endpointInput"].update(observedContentType=1)),
        edited(lambda r: r["eventMetadata"].update(inferenceId=["not", "readable"])),  # read: still refused
    ]
    assert parse_line(lines[1]).custom_attributes == ["tenant=eu", "ab=7"]
    hour = tmp_path / ENDPOINT / VARIANT / "2022/02/14/17"
    hour.mkdir(parents=True)
    (hour / "25-06-000-2f1b.jsonl").write_text("\n".join(lines) + "\n")
    stats = live_diversity(str(tmp_path), CATALOG)
    assert (stats.records_read, stats.malformed.count, stats.live_lists) == (6, 1, 6)
    assert "eventMetadata.inferenceId is a list" in stats.malformed.entries[0][2]
    assert stats.to_dict()["other_field_shapes"] == {
        "captureData.endpointInput.observedContentType: a number": 1,
        "eventMetadata.customAttributes: a number": 1,
        "eventMetadata.customAttributes: a list": 1,
        "eventMetadata.customAttributes: an object": 1,
    }
    assert record["eventMetadata"]["customAttributes"]  # the unedited line's string is the usual shape: not listed
    result = run_cli(str(tmp_path / ENDPOINT), "--catalog", write_catalog(tmp_path / "catalog.csv"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["other_field_shapes"]["eventMetadata.customAttributes: a list"] == 1


def test_key_layout_and_flushing(tmp_path):
    w = writer(f"{tmp_path}/capture/", flush_at_records=3)
    first = T0 + timedelta(minutes=5, seconds=9, milliseconds=87)
    for offset in range(4):  # the third record fills the buffer: written without flush()
        serve(w, ["a1"], first + timedelta(seconds=offset))
    assert len(capture_files(tmp_path)) == 1
    serve(w, ["a1"], T0 + timedelta(hours=1, minutes=59, seconds=59, milliseconds=999))
    later = w.flush()
    files = capture_files(tmp_path)
    assert len(files) == 3 and len(later) == 2
    pattern = (rf"{tmp_path}/capture/{ENDPOINT}/{VARIANT}/2024/05/01/(\d\d)/"
               r"(\d\d-\d\d-\d\d\d)-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl")
    found = sorted(re.fullmatch(pattern, str(path)).groups() for path in files)
    assert found == [("10", "05-09-087"), ("10", "05-12-087"), ("11", "59-59-999")]
    assert [len(path.read_bytes().splitlines()) for path in sorted(files)] == [3, 1, 1]
    assert capture.capture_hour(str(files[0])) == T0


def test_capture_options_input_only(tmp_path):
    w = writer(tmp_path, options=("Input",))
    serve(w, ["a1"], T0)
    w.flush()
    [event] = list(iter_capture_records(str(tmp_path), malformed=MalformedLog()))
    assert event.output_payload is None and event.input_payload.body == request()
    assert live_diversity(str(tmp_path), CATALOG).without_output == 1


@pytest.mark.parametrize("percentage", [0, 30, 100])
def test_sampling_percentage_honoured(tmp_path, percentage):
    w = writer(tmp_path, percentage=percentage, rng=random.Random(1234), flush_at_records=10**6)
    kept = sum(w.capture(b"{}", "application/json", b"{}", "application/json", T0, None) for _ in range(10_000))
    expected, spread = 10_000 * percentage / 100, 5 * (10_000 * 0.3 * 0.7) ** 0.5  # 5 sigma
    assert abs(kept - expected) <= spread
    assert percentage not in (0, 100) or kept == expected
    w.flush()
    assert sum(len(p.read_bytes().splitlines()) for p in capture_files(tmp_path)) == kept


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"sampling_percentage": 101}, "less than or equal to 100"),
        ({"capture_options": {"Both"}}, "enum value set"),
        ({"json_content_types": ["not a media type"]}, "regular expression pattern"),
        ({"endpoint_name": "news_recommender"}, "endpoint name"),
        ({"destination_s3_uri": "ftp://bucket/capture"}, "destinationS3Uri"),
        ({"destination_s3_uri": "https://bucket.s3.amazonaws.com/capture"}, "not the https:// form"),
    ],
)
def test_invalid_capture_settings_are_rejected(tmp_path, change, problem):
    settings = dict(destination_s3_uri="s3://bucket/capture", endpoint_name=ENDPOINT, variant_name=VARIANT,
                    capture_options={"Input", "Output"}, json_content_types=["application/json"],
                    csv_content_types=["text/csv"], sampling_percentage=50)
    with pytest.raises(RequestInvalid, match=problem):
        CaptureWriter(**{**settings, **change})


def test_writer_from_data_capture_config(tmp_path):
    config = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://bucket/capture",
              "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
              "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}}
    w = CaptureWriter.from_data_capture_config(config, ENDPOINT, VARIANT)
    assert w.modes == {"Input", "Output"} and w.csv_types == {"text/csv"} and not w.json_types
    assert CaptureWriter.from_data_capture_config({**config, "EnableCapture": False}, ENDPOINT, VARIANT) is None


# --- malformed lines ---------------------------------------------------------------------------

def test_malformed_lines_are_counted_with_file_and_line(tmp_path):
    w = writer(tmp_path)
    serve(w, ["a1", "a2"], T0)
    [uri] = w.flush()
    good = Path(uri).read_text().strip()
    record = orjson.loads(good)

    def variant(edit) -> str:
        copy = json.loads(good)
        edit(copy)
        return json.dumps(copy)

    bad_lines = {
        2: ("invalid-json", good[: len(good) // 2]),  # truncated
        3: ("bad-base64", variant(lambda r: r["captureData"]["endpointInput"].update(encoding="BASE64", data="not*base64!"))),
        4: ("unknown-encoding", variant(lambda r: r["captureData"]["endpointOutput"].update(encoding="GZIP"))),
        5: ("missing-field", variant(lambda r: r["eventMetadata"].pop("inferenceTime"))),
        6: ("missing-field", variant(lambda r: r["captureData"]["endpointOutput"].pop("data"))),
        7: ("empty-line", ""),
        8: ("not-an-object", "[1, 2]"),
        9: ("unsupported-version", variant(lambda r: r.update(eventVersion="1"))),
        10: ("bad-timestamp", variant(lambda r: r["eventMetadata"].update(inferenceTime="yesterday"))),
        11: ("bad-field-type", variant(lambda r: r["eventMetadata"].update(inferenceId=7))),
        12: ("bad-field-value", variant(lambda r: r["captureData"]["endpointInput"].update(mode="OUTPUT"))),
    }
    lines = [good] + [line for _, line in bad_lines.values()] + [good]
    Path(uri).write_text("\n".join(lines) + "\n")
    assert record["captureData"]["endpointInput"]["encoding"] == "JSON"

    log = MalformedLog()
    assert len(list(iter_capture_records(str(tmp_path), malformed=log))) == 2
    assert log.count == 11
    assert [(file, line) for file, line, _ in log.entries] == [(uri, number) for number in bad_lines]
    assert [reason.split(":")[0] for _, _, reason in log.entries] == [kind for kind, _ in bad_lines.values()]
    assert "endpointOutput.data is missing" in log.entries[4][2]

    stats = live_diversity(str(tmp_path), CATALOG, location_limit=3)
    assert (stats.lines_read, stats.records_read, stats.live_lists) == (13, 2, 2)
    assert stats.malformed.count == 11 and len(stats.malformed.entries) == 3
    assert stats.malformed.by_kind["missing-field"] == 2
    report = stats.to_dict()["malformed"]
    assert report["locations_truncated"] and report["locations"][0] == {"file": uri, "line": 2, "reason": log.entries[0][2]}


def test_bad_lines_cannot_be_dropped_unseen(tmp_path):
    w = writer(tmp_path)
    serve(w, ["a1"], T0)
    with pytest.raises(TypeError, match="malformed"):
        list(iter_capture_records(str(tmp_path)))  # no log: refused, not silently dropped
    with pytest.raises(TypeError, match="must be a MalformedLog"):
        list(iter_capture_records(str(tmp_path), malformed=None))


def test_capture_check_counts_bad_lines_like_the_reader(tmp_path):
    """capture_check reads with the reader's loop: a blank or truncated line is counted with its
    place (not skipped, not fatal) and the tagged ids of the good lines are still found."""
    w = writer(tmp_path)
    for index in range(3):
        serve(w, ["a1"], T0 + timedelta(seconds=index), f"diversity-replay-capture-check-t-{index}")
    [uri] = w.flush()
    lines = Path(uri).read_text().splitlines()
    Path(uri).write_text("\n".join([lines[0], "", lines[1], lines[2][:40], lines[2]]) + "\n")
    log = MalformedLog()
    assert capture_check._ids_in(uri, log) == {f"diversity-replay-capture-check-t-{i}" for i in range(3)}
    assert [(file, line, reason.split(":")[0]) for file, line, reason in log.entries] == [
        (uri, 2, "empty-line"), (uri, 4, "invalid-json")]


def test_response_that_does_not_match_the_path_is_reported(tmp_path):
    w = writer(tmp_path)
    serve(w, ["a1"], T0)
    w.capture(request(), "application/json", b'{"error": "busy"}', "application/json", T0, "web-2")
    w.capture(request(), "application/json", b"not json", "application/json", T0, "web-3")
    [uri] = w.flush()
    stats = live_diversity(str(tmp_path), CATALOG)
    assert (stats.records_read, stats.live_lists, stats.unreadable_responses.count) == (3, 1, 2)
    assert [(line, reason.split(":")[0]) for _, line, reason in stats.unreadable_responses.entries] == [
        (2, "bad-response"), (3, "bad-response")]
    assert "has no key 'recommendations'" in stats.unreadable_responses.entries[0][2]


# --- response paths ----------------------------------------------------------

def test_response_path_expressions():
    assert compile_response_path("recommendations[].article_id")(
        {"recommendations": [{"article_id": "a2"}, {"article_id": "a1"}]}) == ["a2", "a1"]
    assert compile_response_path("[].id")([{"id": "x"}, {"id": "y"}]) == ["x", "y"]
    assert compile_response_path("ids[]")({"ids": ["x", "y"]}) == ["x", "y"]
    assert compile_response_path("result.items[].doc.id")({"result": {"items": [{"doc": {"id": "x"}}]}}) == ["x"]
    for bad in ["recommendations.article_id", "a[].b[].c", "", "a..b[]", "a[0].b"]:
        with pytest.raises(ValueError, match="is not valid"):
            compile_response_path(bad)
    extract = compile_response_path("recommendations[].article_id")
    for payload, message in [
        ([1], "payload is a list, expected an object with key 'recommendations'"),
        ({"recommendations": {}}, "recommendations is an object, expected a list"),
        ({"recommendations": [{"article_id": "a"}, {"id": "b"}]}, "item 1 has no key 'article_id'"),
        ({"recommendations": [{"article_id": 7}]}, "item 0 article_id is a int, expected a string"),
        ({"recommendations": ["a1"]}, "item 0 is a string, expected an object"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            extract(payload)


# --- sources and windows -----------------------------------------------------------------------

def traffic(w: CaptureWriter, moments, seed=5) -> list[list[str]]:
    """Live and replay traffic at the given moments; returns the live lists, in order."""
    rng, live = random.Random(seed), []
    for index, moment in enumerate(moments):
        ids = rng.sample(sorted(CATALOG), 10) + (["missing-article"] if index % 7 == 0 else [])
        replay = index % 5 == 0
        serve(w, ids, moment, f"diversity-replay-{index}" if replay else (None if index % 3 == 0 else f"web-{index}"))
        if not replay:
            live.append(ids)
    w.flush()
    return live


def test_live_diversity_matches_the_metrics_on_the_same_lists(tmp_path):
    live = traffic(writer(tmp_path, flush_at_records=40), [T0 + timedelta(seconds=7 * i) for i in range(150)])
    stats = live_diversity(str(tmp_path), CATALOG)
    expected = accumulate(live, CATALOG, 10)
    assert stats.accumulator == expected
    assert stats.replay_excluded == 30 and stats.live_lists == 120 and stats.records_read == 150
    summary = stats.to_dict()
    assert summary["diversity"]["mean"] == expected.diversity().mean
    assert summary["collapse"]["max_slot_concentration"] == expected.collapse().max_slot_concentration
    counts = ReadCounts()
    events = list(iter_capture_records(str(tmp_path), malformed=MalformedLog(), counts=counts,
                                       exclude_inference_prefix="diversity-replay-"))
    assert len(events) == 120 and counts.replay_excluded == 30
    assert [json.loads(e.output_payload.body)["recommendations"][0]["article_id"] for e in events] == [ranked[0] for ranked in live]
    assert live_diversity(str(tmp_path), CATALOG, exclude_inference_prefix="").live_lists == 150
    assert live_diversity(str(tmp_path), CATALOG, exclude_inference_prefix="web-").replay_excluded == 80


def test_hour_range_reads_only_the_hours_it_needs(tmp_path):
    moments = [T0 + timedelta(minutes=20 * i) for i in range(9)]  # 10:00 .. 12:40
    w = writer(tmp_path)
    for index, moment in enumerate(moments):
        serve(w, ["a1", "a2", "a3"], moment, f"web-{index}")
    w.flush()
    outside = tmp_path / ENDPOINT / VARIANT / "2024/05/01/13"
    outside.mkdir()
    (outside / "00-00-000-x.jsonl").write_text("{ not read\n")  # would be malformed if it were read
    counts = ReadCounts()
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=2)
    events = list(iter_capture_records(str(tmp_path), start, end, malformed=MalformedLog(), counts=counts))
    assert [e.inference_time for e in events] == [m for m in moments if start <= m < end]  # 10:40 .. 11:40
    assert (counts.files_read, counts.records_read, counts.outside_window) == (2, 6, 2)
    stats = live_diversity(str(tmp_path), CATALOG, start=start, end=end)
    assert (stats.files_read, stats.live_lists, stats.outside_window, stats.malformed.count) == (2, 4, 2, 0)
    everything = live_diversity(str(tmp_path), CATALOG)
    assert (everything.files_read, everything.malformed.count) == (4, 1)
    with pytest.raises(ValueError, match="must be before"):
        live_diversity(str(tmp_path), CATALOG, start=end, end=start)


def test_local_folder_source_at_every_depth(tmp_path):
    dataset_source = tmp_path / "processing/input/endpoint"
    traffic(writer(dataset_source, flush_at_records=25), [T0 + timedelta(seconds=30 * i) for i in range(60)])
    (dataset_source / ENDPOINT / VARIANT / "2024/05/01/10" / "README.txt").write_text("not capture")
    results = [live_diversity(str(path), CATALOG).to_dict()
               for path in (dataset_source, dataset_source / ENDPOINT, dataset_source / ENDPOINT / VARIANT)]
    assert all({k: v for k, v in r.items() if k != "source"} == {k: v for k, v in results[0].items() if k != "source"}
               for r in results)
    assert results[0]["live_lists"] == 48 and results[0]["files_read"] == 3
    assert results[0]["skipped_files"]["files"][0].endswith("README.txt")
    with pytest.raises(CaptureSourceError, match="is not a folder"):
        live_diversity(str(tmp_path / "nowhere"), CATALOG)


def test_source_inside_a_variant_reads_that_folder(tmp_path):
    destination = tmp_path / "capture"
    traffic(writer(destination, flush_at_records=20), [T0 + timedelta(minutes=2 * i) for i in range(90)])  # 10:00-12:58
    variant = destination / ENDPOINT / VARIANT
    whole = live_diversity(str(variant), CATALOG)
    for folder in ("2024", "2024/05", "2024/05/01/"):
        assert live_diversity(str(variant / folder), CATALOG).accumulator == whole.accumulator, folder
    hour = live_diversity(str(variant / "2024/05/01/11"), CATALOG)
    expected = live_diversity(str(variant), CATALOG, start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2))
    assert (hour.records_read, hour.files_read, hour.accumulator) == (30, 2, expected.accumulator)
    part = live_diversity(str(variant / "2024/05/01/11"), CATALOG, start=T0 + timedelta(minutes=90), end=T0 + timedelta(hours=3))
    assert (part.records_read, part.outside_window) == (30, 15)


def test_source_too_far_above_the_variant_is_an_error_naming_the_levels(tmp_path):
    traffic(writer(tmp_path / "team" / "capture", flush_at_records=20), [T0 + timedelta(minutes=i) for i in range(10)])
    with pytest.raises(CaptureSourceError, match=r"no <variant>/yyyy/mm/dd/hh/ folders within 2 levels below it\. "
                                                  r"SOURCE must be the DestinationS3Uri, an endpoint folder"):
        live_diversity(str(tmp_path), CATALOG)
    done = run_cli(str(tmp_path), "--catalog", write_catalog(tmp_path / "catalog.csv"))
    assert done.returncode == 3 and "SOURCE must be" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "empty").mkdir()  # nothing captured yet: no error, nothing read
    assert live_diversity(str(tmp_path / "empty"), CATALOG).files_read == 0


def test_s3_source(aws_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="capture-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    destination = "s3://capture-bucket/datacapture"
    live = traffic(writer(destination, flush_at_records=20), [T0 + timedelta(minutes=3 * i) for i in range(50)])
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="capture-bucket")["Contents"]]
    assert all(re.fullmatch(rf"datacapture/{ENDPOINT}/{VARIANT}/2024/05/01/1[012]/\d\d-\d\d-\d{{3}}-[-0-9a-f]{{36}}\.jsonl", key)
               for key in keys)
    expected = accumulate(live, CATALOG, 10)
    for source in (destination, f"{destination}/{ENDPOINT}", f"{destination}/{ENDPOINT}/{VARIANT}/"):
        assert live_diversity(source, CATALOG).accumulator == expected
    assert live_diversity(destination, CATALOG, workers=2).accumulator == expected  # spawned workers read S3
    window = live_diversity(destination, CATALOG, start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2))
    assert window.records_read == 20 and window.files_read == 1
    hour_folder = live_diversity(f"{destination}/{ENDPOINT}/{VARIANT}/2024/05/01/11", CATALOG)
    assert hour_folder.accumulator == window.accumulator and hour_folder.files_read == 1
    assert len(list(iter_capture_records(destination, malformed=MalformedLog()))) == 50
    with pytest.raises(CaptureSourceError, match="no-such-bucket"):
        live_diversity("s3://no-such-bucket/capture", CATALOG)


def test_two_workers_give_identical_results(tmp_path):
    traffic(writer(tmp_path, flush_at_records=15), [T0 + timedelta(seconds=50 * i) for i in range(120)])
    files = capture_files(tmp_path)
    files[2].write_text(files[2].read_text() + "{truncated\n")
    one, two = (live_diversity(str(tmp_path), CATALOG, workers=n) for n in (1, 2))
    assert len(files) == 9 and one.malformed.count == 1
    assert one.to_dict() == two.to_dict() and one.accumulator == two.accumulator


# --- the command -------------------------------------------------------------------------------

def write_catalog(path: Path) -> str:
    path.write_text("article_id,category\n" + "".join(f"{a},{c}\n" for a, c in CATALOG.items()))
    return str(path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "capture-stats", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_capture_stats_command(tmp_path):
    source = tmp_path / "capture"
    live = traffic(writer(source, flush_at_records=30), [T0 + timedelta(minutes=2 * i) for i in range(90)])
    bad = capture_files(source)[0]
    bad.write_text(bad.read_text() + '{"captureData": \n')
    catalog = write_catalog(tmp_path / "catalog.csv")

    done = run_cli(str(source), "--catalog", catalog, "--start", "2024-05-01T10:00:00Z", "--end", "2024-05-01T13:00:00Z",
                   "--workers", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    expected = accumulate(live, CATALOG, 10)
    assert summary["records_read"] == 90 and summary["live_lists"] == len(live) == 72
    assert summary["replay_excluded"] == 18
    assert summary["malformed"]["count"] == 1
    assert summary["malformed"]["locations"][0]["file"] == str(bad)
    assert summary["diversity"]["mean"] == pytest.approx(expected.diversity().mean)
    assert summary["collapse"]["distinct_articles"] == expected.collapse().distinct_articles

    one_hour = json.loads(run_cli(str(source), "--catalog", catalog, "--start", "2024-05-01T11:00:00Z",
                                  "--end", "2024-05-01T12:00:00", "--exclude-inference-prefix", "").stdout)
    assert one_hour["records_read"] == 30 and one_hour["replay_excluded"] == 0

    missing_source = run_cli(str(tmp_path / "nowhere"), "--catalog", catalog)
    assert missing_source.returncode == 3 and "CaptureSourceError" in missing_source.stderr
    missing_catalog = run_cli(str(source), "--catalog", str(tmp_path / "nope.csv"))
    assert missing_catalog.returncode == 4 and "CatalogError" in missing_catalog.stderr
    bad_time = run_cli(str(source), "--catalog", catalog, "--start", "ten o'clock")
    assert bad_time.returncode == 2 and "ISO-8601" in bad_time.stderr


class _ListingDropsConnection(BaseHTTPRequestHandler):
    """An S3 endpoint that answers the source probe (a one-key listing) and the folder listing (a variant
    with a year folder) but drops the connection on the object listing: a network failure in the middle
    of a listing."""

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        if "delimiter=" not in self.path and "max-keys=1" not in self.path:
            self.close_connection = True  # no response at all
            return
        body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                b"<Name>bucket</Name><Prefix>variant/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
                b"<Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>"
                b"<CommonPrefixes><Prefix>variant/2024/</Prefix></CommonPrefixes></ListBucketResult>")
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_capture_stats_reports_a_connection_error_while_listing(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ListingDropsConnection)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
               "AWS_MAX_ATTEMPTS": "1", "PYTHONWARNINGS": "ignore"}
        env.pop("AWS_PROFILE", None)
        done = subprocess.run([str(CLI), "capture-stats", "s3://bucket/variant", "--catalog",
                               write_catalog(tmp_path / "catalog.csv")], capture_output=True, text=True, timeout=120, env=env)
    finally:
        server.shutdown()
    assert done.returncode == 3, done.stderr
    assert "CaptureSourceError: cannot list s3://bucket/variant" in done.stderr and "Traceback" not in done.stderr


def test_failed_write_is_loud_and_keeps_the_records(tmp_path):
    target = tmp_path / "capture"
    target.write_text("")  # a file where the destination folder should be
    w = writer(target, flush_at_records=2)
    serve(w, ["a1"], T0)
    with pytest.raises(OSError):
        serve(w, ["a2"], T0 + timedelta(seconds=1))
    target.unlink()
    [uri] = w.flush()
    assert [orjson.loads(line)["eventMetadata"]["inferenceTime"] for line in Path(uri).read_bytes().splitlines()] == [
        "2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z"]


def test_malformed_record_kinds_are_stable():
    with pytest.raises(MalformedRecord) as caught:
        parse_line(b'{"captureData": {}, "eventMetadata": {}, "eventVersion": "0"}')
    assert caught.value.kind == "missing-field" and "neither endpointInput nor endpointOutput" in str(caught.value)
