"""The reference recommender end to end: seeded data -> model.tar.gz -> the real server over HTTP.

Each model version is trained from the generated click log, extracted the way SageMaker fills
/opt/ml/model, served by uvicorn on a free loopback port, and replayed with the 500 validation
requests. Healthy and regressed behaviour is judged with the kit's own metric functions
(`metrics.accumulate` over `inputs.load_catalog`), never against stored lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from diversity_monitor.job import inputs
from diversity_monitor.local import images
from diversity_monitor.local.platform import free_port
from diversity_monitor.measures import metrics
from diversity_monitor.recommender import artifacts, data, model, server

VERSIONS = {None: "v1", "popularity-scaling": "v2-popularity-scaling", "frozen-slots": "v2-frozen-slots"}


class Client:
    """One keep-alive HTTP connection to a server, JSON in and out."""

    def __init__(self, base_url: str):
        parsed = urlparse(base_url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = "application/json"):
        headers = {"Content-Type": content_type} if content_type else {}
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        assert response.getheader("Content-Type", "").startswith("application/json"), payload
        return response.status, json.loads(payload)

    def invoke(self, body: dict):
        return self.request("POST", "/invocations", json.dumps(body).encode())

    def close(self) -> None:
        self.connection.close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> data.DatasetPaths:
    return data.generate(tmp_path_factory.mktemp("data"), seed=7)


@pytest.fixture(scope="module")
def archives(dataset, tmp_path_factory) -> dict[str | None, Path]:
    out = tmp_path_factory.mktemp("models")
    return {
        defect: model.train(dataset.root, out / version, version, defect=defect)
        for defect, version in VERSIONS.items()
    }


@pytest.fixture(scope="module")
def servers(archives, tmp_path_factory):
    """defect -> base URL of a real server for that version (model extracted as SageMaker does)."""
    with contextlib.ExitStack() as stack:
        urls = {}
        for defect, archive in archives.items():
            model_dir = artifacts.extract(archive, tmp_path_factory.mktemp("opt_ml") / "model")
            urls[defect] = stack.enter_context(server.serving(model_dir, host="127.0.0.1", port=0))
        yield urls


@pytest.fixture(scope="module")
def catalog(dataset) -> dict[str, str]:
    return inputs.load_catalog(str(dataset.catalog))


@pytest.fixture(scope="module")
def sessions(dataset) -> list[inputs.Session]:
    return inputs.load_validation_set(str(dataset.validation_sessions))


@pytest.fixture(scope="module")
def replays(servers, sessions) -> dict[str | None, list[dict]]:
    """defect -> the response body for every validation session, in session order."""
    responses = {}
    for defect, url in servers.items():
        client = Client(url)
        bodies = []
        for session in sessions:
            status, body = client.invoke(session.request)
            assert status == 200, (session.session_id, body)
            bodies.append(body)
        client.close()
        responses[defect] = bodies
    return responses


def _measure(responses: list[dict], catalog: dict[str, str]) -> metrics.DiversityAccumulator:
    ranked = [[item["article_id"] for item in body["recommendations"]] for body in responses]
    return metrics.accumulate(ranked, catalog, k=10)


def _share(histogram, low: int, high: int) -> float:
    """Share of lists with low..high distinct categories."""
    return sum(histogram[low:high + 1]) / sum(histogram)


def _describe(name: str, accumulator: metrics.DiversityAccumulator) -> str:
    diversity, collapse = accumulator.diversity(), accumulator.collapse()
    histogram = "  ".join(f"{count}:{lists}" for count, lists in enumerate(diversity.histogram) if lists)
    return (
        f"{name}: mean {diversity.mean:.2f} distinct categories per top-10 (min {diversity.min}, "
        f"p5 {diversity.p5}, max {diversity.max}); histogram categories:lists {histogram}; "
        f"max slot concentration {collapse.max_slot_concentration:.3f}; "
        f"distinct articles {collapse.distinct_articles}"
    )


# --- healthy and regressed behaviour, through the metric functions ------------------------------

def test_healthy_model_lands_at_6_to_8_categories(replays, catalog):
    accumulator = _measure(replays[None], catalog)
    diversity, collapse = accumulator.diversity(), accumulator.collapse()
    described = _describe("healthy", accumulator)
    assert diversity.lists == 500
    assert diversity.unknown_articles == 0 and diversity.short_lists == 0
    # The distribution, not only its mean: most lists in the 6-8 band, the low tail inside it too.
    assert _share(diversity.histogram, 6, 8) >= 0.85, described
    assert diversity.p5 >= 6 and 6 <= diversity.mean <= 8, described
    assert _share(diversity.histogram, 0, 4) == 0, described
    # Personalised: no slot is frozen and the lists draw on many stories.
    assert collapse.max_slot_concentration < 0.5, described
    assert collapse.distinct_articles >= 100, described


def test_popularity_scaling_collapses_categories_onto_trending_stories(replays, catalog):
    accumulator = _measure(replays["popularity-scaling"], catalog)
    diversity, collapse = accumulator.diversity(), accumulator.collapse()
    described = _describe("popularity-scaling", accumulator)
    # The collapse shape: (nearly) every list holds 1-2 categories, the top slots the same stories.
    assert _share(diversity.histogram, 1, 2) >= 0.95 and diversity.max <= 3, described
    assert all(slot.top_article_share >= 0.9 for slot in collapse.slots[:2]), described
    assert collapse.distinct_articles <= 20, described


def test_frozen_slots_keeps_categories_but_serves_everyone_the_same_stories(replays, catalog):
    accumulator = _measure(replays["frozen-slots"], catalog)
    diversity, collapse = accumulator.diversity(), accumulator.collapse()
    described = _describe("frozen-slots", accumulator)
    # Categories look healthy (so a categories-only monitor would miss it) ...
    assert _share(diversity.histogram, 6, 8) >= 0.85 and diversity.p5 >= 6, described
    # ... but most slots are frozen on one story each.
    frozen = [slot.slot for slot in collapse.slots if slot.top_article_share >= 0.9]
    assert len(frozen) >= 8, described
    assert collapse.distinct_articles <= 20, described


def test_healthy_recommendations_follow_each_users_preferences(replays, sessions, catalog, dataset):
    """The healthy model learned something: its lists lean towards each user's true categories
    (known to the generator), far more than the everyone-gets-the-same list does."""
    preferences = {
        record["user_id"]: record["preferences"]
        for record in map(json.loads, dataset.users.read_text().splitlines())
    }

    def preference_mass(responses: list[dict]) -> float:
        masses = [
            np.mean([preferences[session.request["user_id"]][catalog[item["article_id"]]] for item in body["recommendations"]])
            for session, body in zip(sessions, responses)
        ]
        return float(np.mean(masses))

    healthy, frozen = preference_mass(replays[None]), preference_mass(replays["frozen-slots"])
    assert healthy >= 1.5 * frozen, f"mean preference mass: healthy {healthy:.3f}, frozen-slots {frozen:.3f}"


def test_defects_live_in_the_learned_arrays(archives, tmp_path):
    """Each regression is a broken training step: its artifact differs from the healthy one in
    exactly the arrays that step produces (same seed, so everything else is equal)."""
    loaded = {}
    for defect, archive in archives.items():
        model_dir = artifacts.extract(archive, tmp_path / str(defect))
        with np.load(model_dir / artifacts.ARRAYS) as arrays:
            loaded[defect] = {name: arrays[name] for name in arrays.files}
    healthy = loaded[None]

    def changed(defect: str) -> set[str]:
        return {name for name, array in loaded[defect].items() if not np.array_equal(array, healthy[name])}

    assert changed("popularity-scaling") == {"popularity"}
    assert loaded["popularity-scaling"]["popularity"].max() > 50  # raw click counts, not z-scores
    assert changed("frozen-slots") == {"user_keys", "article_keys"}


# --- the serving contract -------------------------------------------------------------------

def test_ping_answers_200_with_the_model_version(servers):
    for defect, url in servers.items():
        client = Client(url)
        status, body = client.request("GET", "/ping", content_type=None)
        client.close()
        assert status == 200
        assert body["model_version"] == VERSIONS[defect]


def test_responses_hold_ranked_article_ids_and_nothing_else(servers, sessions, catalog):
    client = Client(servers[None])
    request = dict(sessions[0].request, k=25, trace_id="ignored")
    status, body = client.invoke(request)
    client.close()
    assert status == 200
    assert set(body) == {"recommendations", "model_version"}
    assert body["model_version"] == "v1"
    items = body["recommendations"]
    assert len(items) == 25
    assert all(set(item) == {"article_id", "score"} for item in items)  # no categories
    ids = [item["article_id"] for item in items]
    assert len(set(ids)) == 25 and set(ids) <= catalog.keys()
    assert not set(ids) & set(request["history"])  # already read
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)


def test_unknown_users_get_cold_start_recommendations(servers, catalog, dataset):
    client = Client(servers[None])
    status, empty = client.invoke({"user_id": "someone-new"})
    assert status == 200 and len(empty["recommendations"]) == 10
    # A new reader of car stories: the history is folded in (ids the model never saw are ignored).
    clicked = [row["article_id"] for row in data.read_csv(dataset.clicks, ("article_id",))]
    autos = [a for a, _ in Counter(clicked).most_common() if catalog[a] == "autos"][:8]
    status, with_history = client.invoke({"user_id": "someone-new", "history": autos + ["a-not-in-catalog"]})
    client.close()
    assert status == 200
    categories = [catalog[item["article_id"]] for item in with_history["recommendations"]]
    baseline = [catalog[item["article_id"]] for item in empty["recommendations"]]
    assert categories.count("autos") >= 2 > baseline.count("autos")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b'{"user_id": "u00001"}', "text/csv", 415, "Content-Type"),
        (b'{"user_id": "u00001"}', None, 415, "Content-Type"),
        (b'{"user_id": ', "application/json", 400, "not valid JSON"),
        (b'["u00001"]', "application/json", 400, "JSON object"),
        (b"{}", "application/json", 400, "'user_id' is required"),
        (b'{"user_id": 42}', "application/json", 400, "'user_id' must be a non-empty string"),
        (b'{"user_id": ""}', "application/json", 400, "'user_id' must be a non-empty string"),
        (b'{"user_id": "u1", "history": "a0001"}', "application/json", 400, "'history' must be a list"),
        (b'{"user_id": "u1", "history": ["a0001", 7]}', "application/json", 400, "'history' item 1"),
        (b'{"user_id": "u1", "k": 0}', "application/json", 400, "'k' must be in 1..100"),
        (b'{"user_id": "u1", "k": 101}', "application/json", 400, "'k' must be in 1..100"),
        (b'{"user_id": "u1", "k": "10"}', "application/json", 400, "'k' must be an integer"),
        (b'{"user_id": "u1", "k": true}', "application/json", 400, "'k' must be an integer"),
        (b'{"user_id": "u1", "pad": "' + b"x" * server.MAX_BODY_BYTES + b'"}', "application/json", 413, "limit"),
    ],
    ids=lambda value: value[:40] if isinstance(value, bytes) else None,
)
def test_bad_requests_get_4xx_with_a_reason(servers, body, content_type, status, reason):
    client = Client(servers[None])
    got_status, got = client.request("POST", "/invocations", body, content_type=content_type)
    client.close()
    assert got_status == status
    assert set(got) == {"error"} and reason in got["error"]


def test_wrong_routes_and_methods_get_json_4xx(servers):
    client = Client(servers[None])
    assert client.request("GET", "/invocations", content_type=None) == (405, {"error": "Method Not Allowed"})
    assert client.request("GET", "/models", content_type=None) == (404, {"error": "Not Found"})
    client.close()


@pytest.mark.parametrize("latency", [-1, float("nan"), float("inf"), "abc"])
def test_create_app_refuses_a_bad_latency(tmp_path, archives, latency):
    model_dir = artifacts.extract(archives[None], tmp_path / "model")
    with pytest.raises(server.LatencyError, match="latency_ms=.*(number of milliseconds)"):
        server.create_app(model_dir, latency_ms=latency)


def test_serve_refuses_a_missing_model(tmp_path):
    with pytest.raises(model.ModelError, match="no model.json"):
        server.create_app(tmp_path / "empty")


CLI = Path(sys.executable).with_name("diversity-monitor")


@pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf"])
def test_latency_environment_is_checked_by_serve_only_with_a_named_error(tmp_path, value):
    env = {**os.environ, server.LATENCY_ENV: value}
    other = subprocess.run([str(CLI), "recommender", "generate", "--help"], capture_output=True, text=True,
                           timeout=60, env=env)
    assert other.returncode == 0, other.stderr  # building the parser does not read the variable
    served = subprocess.run([str(CLI), "recommender", "serve", "--model-dir", str(tmp_path / "model")],
                            capture_output=True, text=True, timeout=60, env=env)
    assert served.returncode == 1 and "Traceback" not in served.stderr
    assert f"LatencyError: {server.LATENCY_ENV}={value!r}" in served.stderr
    flag = subprocess.run([str(CLI), "recommender", "serve", "--latency-ms", value], capture_output=True, text=True,
                          timeout=60, env={**os.environ, server.LATENCY_ENV: "0"})
    assert flag.returncode == 2 and f"--latency-ms={value!r}" in flag.stderr


def test_fixed_latency_is_added_to_each_invocation(archives, tmp_path):
    latency_ms = 300
    with server.serving(artifacts.extract(archives[None], tmp_path / "model"), latency_ms=latency_ms) as url:
        client = Client(url)
        started = time.perf_counter()
        status, body = client.invoke({"user_id": "u00001"})
        elapsed = time.perf_counter() - started
        client.close()
    assert status == 200 and len(body["recommendations"]) == 10
    assert elapsed >= latency_ms / 1000  # a lower bound only: the delay was added


class _GatedRecommender:
    """The real model held at a gate, as a slow model would be: recommend() waits for the test."""

    def __init__(self, real: model.Recommender):
        self.real, self.version = real, real.version
        self.entered, self.gate = threading.Event(), threading.Event()

    def recommend(self, payload: dict) -> dict:
        self.entered.set()
        assert self.gate.wait(60)
        return self.real.recommend(payload)


def test_ping_answers_while_a_request_is_being_scored(archives, tmp_path):
    app = server.create_app(artifacts.extract(archives[None], tmp_path / "model"))
    gated = app.state.recommender = _GatedRecommender(app.state.recommender)
    results = {}
    with server.serving(app) as url:
        def invoke():
            client = Client(url)
            results["invoke"] = client.invoke({"user_id": "u00001"})
            client.close()

        worker = threading.Thread(target=invoke)
        worker.start()
        try:
            assert gated.entered.wait(60)
            parsed = urlparse(url)
            ping = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
            ping.request("GET", "/ping")  # a blocked event loop would never answer this
            assert ping.getresponse().status == 200
            ping.close()
            assert worker.is_alive() and "invoke" not in results  # the scoring is still held
        finally:
            gated.gate.set()
            worker.join(60)
    assert results["invoke"][0] == 200


def test_oversized_body_is_refused_from_its_content_length(servers):
    parsed = urlparse(servers[None])
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (server.MAX_BODY_BYTES + 1))
        reply = sock.makefile("rb")  # the body is never sent: the answer must not wait for it
        status = reply.readline()
        headers = dict(line.decode().strip().lower().split(": ", 1) for line in iter(reply.readline, b"\r\n"))
        body = json.loads(reply.read(int(headers["content-length"])))
    assert status.startswith(b"HTTP/1.1 413") and "the limit is" in body["error"]


def test_default_port_is_8080_unless_the_platform_sets_one(monkeypatch):
    monkeypatch.delenv(server.PORT_ENV, raising=False)
    assert server.default_port() == 8080
    monkeypatch.setenv(server.PORT_ENV, "9091")
    assert server.default_port() == 9091
    for bad in ("http", "0", "70000"):
        monkeypatch.setenv(server.PORT_ENV, bad)
        with pytest.raises(ValueError, match=server.PORT_ENV):
            server.default_port()


def test_image_entrypoint_serves_the_contract(archives, tmp_path):
    """What the local stack does for `docker run IMAGE serve`: the Dockerfile's ENTRYPOINT, the
    model under <root>/model, the port from SAGEMAKER_BIND_TO_PORT; loopback since /opt/ml is mapped."""
    spec = images.resolve("123456789012.dkr.ecr.eu-west-1.amazonaws.com/news-recommender:v1")
    root = tmp_path / "opt_ml"
    artifacts.extract(archives["frozen-slots"], root / "model")
    port = free_port()
    process = images.launch(spec, root, {"SAGEMAKER_BIND_TO_PORT": str(port)}, ["serve"], log_path=tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60  # a startup wait, not a timing assertion
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                client = Client(f"http://127.0.0.1:{port}")
                status, body = client.request("GET", "/ping", content_type=None)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        assert (status, body["model_version"]) == (200, "v2-frozen-slots")
        status, body = client.invoke({"user_id": "u00001", "history": [], "k": 5})
        assert status == 200 and len(body["recommendations"]) == 5
        client.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the launcher starts it in its own session
        process.wait(30)
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()  # SIGTERM is graceful


# --- artifacts, determinism and live traffic ------------------------------------------------

def test_model_archive_round_trip(archives, tmp_path, sessions):
    archive = archives["popularity-scaling"]
    with tarfile.open(archive, "r:gz") as tar:
        assert sorted(tar.getnames()) == ["model.json", "model.npz"]  # members land in /opt/ml/model
    recommender = model.load(artifacts.extract(archive, tmp_path / "model"))
    assert recommender.version == "v2-popularity-scaling"
    assert recommender.defect == "popularity-scaling"
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert manifest["defect_description"] == model.DEFECTS["popularity-scaling"].description
    response = recommender.recommend(sessions[0].request)
    assert len(response["recommendations"]) == 10 and response["model_version"] == recommender.version


def test_loading_a_broken_model_directory_names_the_problem(archives, tmp_path):
    model_dir = artifacts.extract(archives[None], tmp_path / "model")
    manifest = json.loads((model_dir / "model.json").read_text())
    (model_dir / "model.json").write_text(json.dumps(dict(manifest, format="something-else/9")))
    with pytest.raises(model.ModelError, match="format 'something-else/9'"):
        model.load(model_dir)
    (model_dir / "model.json").write_text(json.dumps(manifest))
    (model_dir / "model.npz").write_bytes(artifacts.npz_bytes({"article_ids": np.array(["a0001"])}))
    with pytest.raises(model.ModelError, match="missing 'article_keys'"):
        model.load(model_dir)


def test_training_rejects_unknown_defects_and_bad_versions(dataset, tmp_path):
    with pytest.raises(ValueError, match="unknown; known: None, popularity-scaling, frozen-slots, popularity-only"):
        model.train(dataset.root, tmp_path, "v9", defect="slow-leak")
    with pytest.raises(ValueError, match="version"):
        model.train(dataset.root, tmp_path, "v 9")


def test_generation_and_training_are_deterministic_for_a_seed(dataset, archives, tmp_path):
    again = data.generate(tmp_path / "again", seed=7)
    for name in ("catalog", "clicks", "validation_sessions", "validation_heldout", "users", "manifest"):
        assert getattr(again, name).read_bytes() == getattr(dataset, name).read_bytes(), name
    other = data.generate(tmp_path / "other", seed=8)
    assert other.clicks.read_bytes() != dataset.clicks.read_bytes()

    retrained = model.train(again.root, tmp_path / "model", "v1")
    assert hashlib.sha256(retrained.read_bytes()).digest() == hashlib.sha256(archives[None].read_bytes()).digest()


def test_dataset_matches_what_the_monitor_reads(dataset, sessions, catalog):
    assert len(sessions) == 500
    assert len(catalog) == 3000 and len(set(catalog.values())) == 17
    header = dataset.catalog.read_text().splitlines()[0]
    assert header == "article_id,category,title,published_at"
    for session in sessions:
        request = session.request
        assert set(request) == {"user_id", "history", "k"}
        assert 1 <= len(request["history"]) <= data.HISTORY_LENGTH and set(request["history"]) <= catalog.keys()
    # The held-out session is kept out of the training log.
    heldout_users = {session.request["user_id"] for session in sessions}
    last_day = {
        row["user_id"] for row in data.read_csv(dataset.clicks, ("user_id", "clicked_at"))
        if row["clicked_at"] >= "2024-11-14T00:00:00Z"
    }
    assert not heldout_users & last_day


def test_live_requests_come_from_users_outside_the_validation_set(dataset, servers, sessions, catalog):
    loaded = data.load(dataset.root)
    requests = data.live_requests(loaded, 200, seed=3)
    assert requests == data.live_requests(dataset.root, 200, seed=3)  # deterministic, path or dataset
    assert requests != data.live_requests(loaded, 200, seed=4)
    validation_users = {session.request["user_id"] for session in sessions}
    users = [request["user_id"] for request in requests]
    assert not set(users) & validation_users
    cold = [user for user in users if user not in loaded.histories]
    assert 0 < len(cold) < len(users)  # some new users exercise the cold-start path
    client = Client(servers[None])
    lists = []
    for request in requests:
        status, body = client.invoke(request)
        assert status == 200, body
        lists.append([item["article_id"] for item in body["recommendations"]])
    client.close()
    accumulator = metrics.accumulate(lists, catalog, k=10)
    diversity = accumulator.diversity()
    assert _share(diversity.histogram, 6, 8) >= 0.8 and 6 <= diversity.mean <= 8, _describe("live traffic", accumulator)
