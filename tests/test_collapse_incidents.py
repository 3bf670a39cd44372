"""One page per incident, on the embedded local stack: each defect of the reference recommender,
then a stale catalog, in one simulated day.

The real schedule replays the validation set every hour, publishes its metrics, the child alarms
(no actions) are evaluated and the composite alarm alone notifies the pager (SNS -> SQS). The
story: v1 healthy; then for each defect, v2 deployed at HH:30, two bad runs, rolled back to v1
at HH:30, two good runs; then the monitor's catalog replaced by a stale one for two runs, and
restored. What the on-call would see: exactly one page per incident, naming the child alarm that
saw it, never a page while the healthy model serves, and a stale catalog paging as monitor
health, not as a diversity collapse.
"""

from __future__ import annotations

import pytest

from diversity_monitor import storage
from diversity_monitor.demo.scenario import CATALOG_URI, ENDPOINT, ScenarioPlan
from diversity_monitor.oncall.report_history import alarm_history
from diversity_monitor.setup.alarms import DIVERSITY_SIGNALS, alarm_names
from helpers.stack import deployed_stack

PLAN = ScenarioPlan(sessions=60, live_requests_per_hour=20)
NAMES = alarm_names(ENDPOINT)
INCIDENTS = {  # incident -> the child alarms that must name it, and those that must not
    "popularity-scaling": ({"diversity"}, set()),
    "frozen-slots": ({"slot_freeze", "top_list", "list_overlap"}, {"diversity"}),
    "popularity-only": ({"top_list", "list_overlap"}, {"diversity"}),
    "stale-catalog": ({"catalog"}, set(DIVERSITY_SIGNALS)),
}


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    path = tmp_path_factory.mktemp("incidents")
    with pytest.MonkeyPatch.context() as patch, deployed_stack(path, patch, PLAN) as (stack, scenario):
        configs = {"popularity-scaling": f"{ENDPOINT}-v2",
                   "frozen-slots": scenario.register_model("v3", "frozen-slots"),
                   "popularity-only": scenario.register_model("v4", "popularity-only")}
        scenario.build_baseline()
        scenario.create_schedule()
        scenario.live_hour()
        scenario.live_for(5 * 60)  # the 07:00 run has published: the alarms, the health child armed
        scenario.create_pager_and_alarms()
        windows = {}
        start = scenario.now()
        scenario.live_hour()
        windows["healthy"] = (start, scenario.now())
        for incident, config in configs.items():
            start = scenario.now()
            scenario.live_until(30)
            scenario.deploy(config, "deploy")
            scenario.live_until(5)
            scenario.live_hour()  # the second bad run: the page
            scenario.live_until(30)
            scenario.deploy(f"{ENDPOINT}-v1", "rollback")
            scenario.live_until(5)
            scenario.live_hour()  # two good runs: every child back to OK
            windows[incident] = (start, scenario.now())
        start = scenario.now()
        fresh = storage.read_bytes(CATALOG_URI)
        lines = fresh.decode().splitlines()
        storage.write_bytes(CATALOG_URI, ("\n".join(lines[: len(lines) // 5]) + "\n").encode())  # a stale catalog
        scenario.live_hour()
        scenario.live_hour()  # two blind runs: the page
        storage.write_bytes(CATALOG_URI, fresh)
        scenario.live_hour()
        windows["stale-catalog"] = (start, scenario.now())
        history = {kind: alarm_history(name) for kind, name in NAMES.items()}
        yield {"pager": scenario.pager_messages(), "windows": windows, "history": history, "scenario": scenario}


def _in(window, message) -> bool:
    start, end = window
    return start.strftime("%Y-%m-%dT%H:%M") <= message["StateChangeTime"][:16] <= end.strftime("%Y-%m-%dT%H:%M")


def _children(message) -> set[str]:
    named = {child["Arn"].rsplit(":", 1)[-1] for child in message["TriggeringChildren"]}
    return {kind for kind, name in NAMES.items() if name in named}


def test_only_the_composite_notifies_the_pager(day):
    assert {message["AlarmName"] for message in day["pager"]} == {NAMES["page"]}
    assert all("Trigger" not in message and message["AlarmRule"].startswith('ALARM("') for message in day["pager"])


def test_the_healthy_model_never_pages(day):
    pages = [m for m in day["pager"] if m["NewStateValue"] == "ALARM"]
    assert not [m for m in pages if _in(day["windows"]["healthy"], m)]
    assert len(pages) == len(INCIDENTS), [(m["StateChangeTime"], m["NewStateReason"]) for m in pages]


@pytest.mark.parametrize("incident", list(INCIDENTS))
def test_each_incident_pages_exactly_once_naming_the_child_that_saw_it(day, incident):
    must, must_not = INCIDENTS[incident]
    messages = [m for m in day["pager"] if _in(day["windows"][incident], m)]
    pages = [m for m in messages if m["NewStateValue"] == "ALARM"]
    assert len(pages) == 1, [(m["StateChangeTime"], m["NewStateValue"]) for m in messages]
    children = _children(pages[0])
    assert must <= children and not (must_not & children), (incident, children)
    first = pages[0]["NewStateReason"]
    assert any(f":alarm:{NAMES[kind]} transitioned to ALARM" in first for kind in must), first
    # ... and the incident's end is one resolve message, after the rollback (or the catalog refresh)
    assert [m["NewStateValue"] for m in messages if m["StateChangeTime"] > pages[0]["StateChangeTime"]] == ["OK"]


def test_a_stale_catalog_pages_monitor_health_not_diversity(day):
    start, end = day["windows"]["stale-catalog"]
    for kind in DIVERSITY_SIGNALS:
        assert not [c for c in day["history"][kind] if start <= c.time <= end and c.new == "ALARM"], kind
    assert [c.new for c in day["history"]["catalog"] if start <= c.time <= end] == ["ALARM", "OK"]
