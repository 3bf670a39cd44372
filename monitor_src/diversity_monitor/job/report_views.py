"""The hourly report's views (verdict, tables, figures), and figures the investigation notebooks share.

Everything here reads statistics / violations documents (the files a run leaves in S3), so the
same views work on a run that just happened and on one from last week.

The report is read in a browser as `report.html`, often on a phone, by an on-call engineer who
wants the verdict first. So:
- the verdict (HEALTHY / VIOLATED / BLIND) is one block at the top, in words and colour, with the
  headline figures against the baseline and the floor and the runbook to open;
- figures are returned as PNG images (`figure_image`), never left to the matplotlib backend: the
  container runs with MPLBACKEND=Agg, where a bare figure displays nothing;
- every text that comes from outside the kit (endpoint, schedule, article ids, categories,
  violation descriptions) goes through `html.escape` before it is rendered: a crafted name shows
  as text, never as markup; tables are rendered whole (no cut descriptions).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from diversity_monitor.clock import parse_instant
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    DIVERSITY_ALARM_RUNBOOK,
    FAILED_RUN_RUNBOOK,
)
from diversity_monitor.job.compare import upper_bound
from diversity_monitor.job.model_monitor_files import Violation, constraint_bounds
from diversity_monitor.job.past_reports import TREND_HOURS

HEALTHY, VIOLATED, BLIND = "HEALTHY", "VIOLATED", "BLIND"
_COLOURS = {HEALTHY: ("#e6f4ea", "#1e7b34"), VIOLATED: ("#fce8e6", "#b3261e"), BLIND: ("#fff4e0", "#8a5300")}
_MEANING = {
    HEALTHY: "The replayed sessions got varied recommendations, as the baseline and the floor expect. Nothing to do.",
    VIOLATED: ("The recommendations this hour broke the checks below. If the diversity alarm fired, "
               "confirm and roll back with the runbook."),
    BLIND: ("This run could not see well enough to judge diversity: its figures are withheld, so no alarm "
            "is fed from them. Find out why with the runbook."),
}
_RUNBOOK = {HEALTHY: None, VIOLATED: DIVERSITY_ALARM_RUNBOOK, BLIND: FAILED_RUN_RUNBOOK}


@dataclass(frozen=True)
class Verdict:
    """What one run concluded, as the first lines of its report say it."""

    status: str  # HEALTHY | VIOLATED | BLIND
    reasons: tuple[str, ...]  # the violations' descriptions (VIOLATED), or why the run was blind (BLIND)
    endpoint: str
    schedule: str | None
    hour: datetime | None  # the scheduled hour (the window's end); None for an ad hoc run

    @property
    def meaning(self) -> str:
        return _MEANING[self.status]

    @property
    def runbook(self) -> str | None:
        return _RUNBOOK[self.status]

    @property
    def when(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} UTC" if self.hour else "ad hoc run"

    @property
    def title(self) -> str:
        """The page title: endpoint, hour, verdict (a browser tab or a list of reports tells them apart)."""
        return f"{self.endpoint} {self.when}: {self.status}"


def _violation_items(violations: Sequence[Violation] | Mapping | Sequence[Mapping]) -> list[dict]:
    if isinstance(violations, Mapping):
        return list(violations.get("violations", []))
    return [v.to_dict() if isinstance(v, Violation) else dict(v) for v in violations]


def verdict(statistics: Mapping, violations: Sequence[Violation] | Mapping | Sequence[Mapping]) -> Verdict:
    """HEALTHY without violations; BLIND when the run could not vouch for its figures (too few sessions
    replayed, a catalog that does not know the served articles); VIOLATED otherwise."""
    block = statistics[CUSTOM_BLOCK]
    items = _violation_items(violations)
    blind = [item["description"] for item in items if item.get("constraint_check_type") == "completeness_check"]
    if not block.get("diversity_reliable", True) and not blind:
        blind = [f"only {block.get('sessions_succeeded')} of {block.get('sessions_attempted')} sessions replayed"]
    if blind:
        status, reasons = BLIND, tuple(blind)
    elif items:
        status, reasons = VIOLATED, tuple(item["description"] for item in items)
    else:
        status, reasons = HEALTHY, ()
    window_end = block.get("window_end")
    return Verdict(status, reasons, str(block.get("endpoint") or "unknown endpoint"),
                   block.get("monitoring_schedule"), parse_instant(window_end) if window_end else None)


def _figure_text(value, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def headline_rows(statistics: Mapping, baseline_statistics: Mapping | None,
                  constraints: Mapping | None = None) -> list[tuple[str, str, str, str]]:
    """(figure, this run, baseline, limits) for the figures the verdict rests on."""
    block = statistics[CUSTOM_BLOCK]
    base = baseline_statistics[CUSTOM_BLOCK] if baseline_statistics else {}
    k = block.get("k")
    bounds = constraint_bounds(constraints, k) if constraints is not None else None
    floor = block.get("min_diversity")
    shown = (lambda key: _figure_text(block.get(key))) if block.get("diversity_reliable", True) else (lambda key: "withheld")
    baseline = (lambda key: _figure_text(base.get(key))) if base else (lambda key: "no baseline")
    mean_limits = [f"≥ {floor:g} (floor)"] if floor is not None else []
    if bounds:
        mean_limits.append(f"≥ {bounds.mean_lower_bound:g} (baseline)")
    limits = block.get("limits") or {}

    def at_most(limit_key: str, baseline_bound: float | None) -> str:
        bound, source = upper_bound(limits[limit_key], baseline_bound) if limit_key in limits else (baseline_bound, "baseline")
        return f"≤ {bound:.2f} ({source})" if bound is not None else ""

    return [
        (f"mean categories per top-{k}", shown("mean"), baseline("mean"), ", ".join(mean_limits)),
        (f"p5 categories per top-{k}", shown("p5"), baseline("p5"), f"≥ {bounds.p5_lower_bound:g}" if bounds else ""),
        ("most frequent article's share in one slot", shown("max_slot_concentration"),
         baseline("max_slot_concentration"), at_most("max_slot_share", bounds.slot_upper_bound if bounds else None)),
        ("overlap of two sessions' lists (mean |A∩B|/k)", shown("list_overlap"), baseline("list_overlap"),
         at_most("max_list_overlap", bounds.overlap_upper_bound if bounds else None)),
        ("sessions served the most common list", shown("top_list_share"), baseline("top_list_share"),
         at_most("max_top_list_share", bounds.top_list_upper_bound if bounds else None)),
        ("sessions replayed", f"{block.get('sessions_succeeded')} of {block.get('sessions_attempted')}", "",
         f"≥ {block['min_success_rate']:.0%}" if block.get("min_success_rate") is not None else ""),
    ]


def verdict_html(statistics: Mapping, violations, baseline_statistics: Mapping | None = None,
                 constraints: Mapping | None = None) -> str:
    """The report's first block: verdict in words and colour, headline figures, meaning, runbook."""
    found = verdict(statistics, violations)
    background, ink = _COLOURS[found.status]
    e = html.escape
    block = statistics[CUSTOM_BLOCK]
    where = f"schedule <code>{e(found.schedule)}</code>, " if found.schedule else ""
    rows = "".join(
        f"<tr><th scope='row'>{e(name)}</th><td>{e(now)}</td><td>{e(base)}</td><td>{e(limit)}</td></tr>"
        for name, now, base, limit in headline_rows(statistics, baseline_statistics, constraints))
    reasons = "".join(f"<li>{e(reason)}</li>" for reason in found.reasons)
    runbook = ""
    if found.runbook:
        runbook = f"<p class='dm-runbook'>Runbook: <code>{e(found.runbook)}</code></p>"
    serving = block.get("serving")
    served = f"<p class='dm-served'>{e(serving_line(serving))}</p>" if serving else ""
    return (
        f"<section class='dm-verdict dm-{found.status.lower()}' style='background:{background};"
        f"border-left:6px solid {ink};padding:0.6em 1em;margin:0 0 1em 0'>"
        f"<h1 style='color:{ink};margin:0.2em 0'>{e(found.status)}</h1>"
        f"<p class='dm-where'>Endpoint <code>{e(found.endpoint)}</code>, {where}"
        f"{e(found.when)}, measured at {e(str(block.get('measured_at')))}</p>"
        f"<p class='dm-meaning'>{e(found.meaning)}</p>"
        f"{f'<ul class=dm-reasons>{reasons}</ul>' if reasons else ''}"
        f"<table class='dm-headline'><thead><tr><th></th><th>this run</th><th>baseline</th><th>must be</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>{served}{runbook}</section>"
    )


def figure_image(figure):
    """The figure as a PNG image output (and closed): renders under any matplotlib backend, Agg included."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return Image(data=buffer.getvalue(), format="png")


def table_html(frame: pd.DataFrame, empty: str, *, index: bool = True) -> str:
    """A table rendered whole (no cut cells), its text escaped; `empty` said in words when it has no rows."""
    if frame.empty:
        return f"<p class='dm-empty'>{html.escape(empty)}</p>"
    with pd.option_context("display.max_colwidth", None):
        return frame.to_html(escape=True, border=0, classes="dm-table", na_rep="", index=index)


def serving_line(serving: Mapping) -> str:
    """Which endpoint config served the replay, in words (the on-call's first question)."""
    if serving.get("error"):
        return f"Served by: unknown ({serving['error']})"
    models = ", ".join(f"{variant}: {model}" for variant, model in (serving.get("models") or {}).items())
    line = f"Served by endpoint config {serving.get('endpoint_config')} ({models or 'no variants listed'})"
    if serving.get("changed_during_replay"):
        line += ", but the endpoint changed or was updating during the replay: figures mix configs"
    return line


def _endpoint_config(block: Mapping) -> str | None:
    serving = block.get("serving") or {}
    return serving.get("endpoint_config")


def summary_table(statistics: Mapping, baseline_statistics: Mapping | None = None) -> pd.DataFrame:
    rows = ["mean", "min", "p5", "max", "distinct_articles", "max_slot_concentration", "list_overlap",
            "top_list_share", "unknown_article_share", "short_list_share", "success_rate", "sessions_succeeded"]
    current = statistics[CUSTOM_BLOCK]
    table = pd.DataFrame({"current": [current.get(row) for row in rows] + [_endpoint_config(current)]},
                         index=[*rows, "endpoint_config"])
    if baseline_statistics is not None:
        baseline = baseline_statistics[CUSTOM_BLOCK]
        table["baseline"] = [baseline.get(row) for row in rows] + [_endpoint_config(baseline)]
    table.index.name = f"top-{current['k']} categories"
    return table


def histogram_frame(statistics: Mapping, baseline_statistics: Mapping | None = None) -> pd.DataFrame:
    """Share of sessions per distinct-category count, current vs baseline."""
    def shares(document: Mapping) -> pd.Series:
        counts = pd.Series(document[CUSTOM_BLOCK]["histogram"], dtype=float)
        return counts / counts.sum() if counts.sum() else counts

    frame = pd.DataFrame({"current": shares(statistics)})
    if baseline_statistics is not None:
        frame["baseline"] = shares(baseline_statistics)
    frame.index.name = "distinct categories"
    return frame.fillna(0.0)


def histogram_figure(statistics: Mapping, baseline_statistics: Mapping | None = None, min_diversity: float | None = None):
    import matplotlib.pyplot as plt

    frame = histogram_frame(statistics, baseline_statistics)
    figure, axis = plt.subplots(figsize=(7, 3.2))
    axis.bar(frame.index, frame["current"], color="#3b75af", label="this run")
    if "baseline" in frame:
        axis.step(frame.index, frame["baseline"], where="mid", color="#d62728", linewidth=2, label="baseline")
    if min_diversity is not None:
        axis.axvline(min_diversity, color="grey", linestyle="--", label=f"floor {min_diversity:g}")
    axis.set_xlabel(frame.index.name)
    axis.set_ylabel("share of sessions")
    axis.set_xticks(list(frame.index))
    axis.legend()
    figure.tight_layout()
    return figure


def categories_table(statistics: Mapping, baseline_statistics: Mapping | None = None, top: int = 12) -> pd.DataFrame:
    """The categories shown most this run (share of filled slots), next to their baseline share."""
    def shares(document: Mapping | None) -> dict[str, float]:
        items = (document or {}).get(CUSTOM_BLOCK, {}).get("category_shares") or []
        return {item["category"]: item["share"] for item in items}

    current, baseline = shares(statistics), shares(baseline_statistics)
    frame = pd.DataFrame({"category": list(current)[:top], "share of slots": list(current.values())[:top]})
    if baseline_statistics is not None:
        frame["baseline share"] = [baseline.get(category, 0.0) for category in frame["category"]]
    return frame.round(3)


def categories_html(statistics: Mapping, baseline_statistics: Mapping | None = None) -> str:
    return table_html(categories_table(statistics, baseline_statistics), "No categories (nothing was replayed).",
                      index=False)


def live_table(statistics: Mapping) -> pd.DataFrame:
    """The replay's figures next to live traffic's (the hour's capture), with what the capture held."""
    block = statistics[CUSTOM_BLOCK]
    live = block.get("live") or {}
    rows = [("mean", "mean"), ("p5", "p5"), ("min", "min"), ("max", "max"),
            ("most frequent article's share in one slot", "max_slot_concentration"),
            ("distinct articles", "distinct_articles")]
    replay_shown = block.get("diversity_reliable", True)
    frame = pd.DataFrame({
        "replay": [_figure_text(block.get(key)) if replay_shown else "withheld" for _, key in rows]
                  + [_figure_text(block.get("sessions_succeeded"))],
        "live traffic": [_figure_text(live.get(key)) for _, key in rows] + [_figure_text(live.get("lists"))],
    }, index=[name for name, _ in rows] + ["top lists"])
    frame.index.name = f"top-{block.get('k')} figures"
    return frame


def live_html(statistics: Mapping) -> str:
    """Live traffic beside the replay: the figures, whether they count, and what the capture held."""
    live = statistics[CUSTOM_BLOCK].get("live")
    if live is None:
        return note_html("live traffic not read in this run (no dataset_source)")
    e = html.escape
    parts = [note_html(live.get("note"))]
    if live.get("reliable"):
        parts.append(note_html(f"{live['lists']} live top lists: judged against the same floor and bounds as the "
                               "replay, and published as live_ metrics."))
    if "mean" in live:
        parts.append(table_html(live_table(statistics), "No figures."))
    sampling = live.get("capture_sampling_percentage")
    held = [f"capture sampling {sampling}% of requests" if sampling is not None else "capture sampling not known"]
    if "records_read" in live:
        held.append(f"{live['records_read']} records read from {live['files_read']} files, "
                    f"{live['replay_excluded']} replay records left out, {live['outside_window']} outside the window")
        malformed = live["malformed"]
        held.append(f"{malformed['count']} malformed lines" + (
            f" (by kind: {', '.join(f'{kind} {count}' for kind, count in malformed['by_kind'].items())})"
            if malformed["count"] else ""))
    parts.append(f"<p class='dm-note'>{e('; '.join(held))}.</p>")
    locations = (live.get("malformed") or {}).get("locations") or []
    if locations:
        items = "".join(f"<li><code>{e(item['file'])}</code> line {item['line']}: {e(item['reason'])}</li>"
                        for item in locations[:10])
        more = len(locations) > 10 or (live.get("malformed") or {}).get("locations_truncated")
        parts.append(f"<ul class='dm-malformed'>{items}</ul>" + ("<p class='dm-note'>(more in statistics.json)</p>"
                                                                 if more else ""))
    return "".join(parts)


def slot_collapse_table(statistics: Mapping) -> pd.DataFrame:
    """Per slot: its most frequent article and share, the distinct articles it showed, how many lists
    filled it, and whether that is enough for the freeze to count (`supported`)."""
    table = pd.DataFrame(statistics[CUSTOM_BLOCK]["slot_collapse"]).set_index("slot")
    columns = ["top_article_id", "top_article_share", "distinct_articles", "lists"]
    return table[columns + (["supported"] if "supported" in table else [])]


def sameness_html(statistics: Mapping) -> str:
    """Is everyone getting the same thing (the cross-session figures), what the monitor could not
    see, and the category spellings it merged."""
    block = statistics[CUSTOM_BLOCK]
    e = html.escape
    support = block.get("min_slot_support")
    rows = [
        ("mean overlap of two sessions' top lists (|A∩B|/k)", block.get("list_overlap")),
        ("share of sessions served the single most common list", block.get("top_list_share")),
        (f"most frozen slot's share (slots filled in ≥ {support:.0%} of lists)" if support is not None
         else "most frozen slot's share", block.get("max_slot_concentration")),
        ("distinct articles across all lists", block.get("distinct_articles")),
        ("served articles missing from the catalog", block.get("unknown_article_share")),
        ("lists shorter than k", block.get("short_list_share")),
    ]
    table = "".join(f"<tr><th scope='row'>{e(name)}</th><td>{e(_figure_text(value, 3))}</td></tr>" for name, value in rows)
    parts = [f"<table class='dm-sameness'><tbody>{table}</tbody></table>"]
    for reason in block.get("blind_reasons") or []:
        parts.append(f"<p class='dm-blind'>Withheld: {e(reason)}</p>")
    merged = block.get("merged_category_variants") or {}
    if merged:
        items = "".join(f"<li><code>{e(name)}</code>: {e(', '.join(repr(v) for v in variants))}</li>"
                        for name, variants in merged.items())
        parts.append("<p class='dm-merged'>Categories compared after trimming and case-folding; the catalog's "
                     f"spellings merged:</p><ul class='dm-merged'>{items}</ul>")
    else:
        parts.append("<p class='dm-merged'>Categories compared after trimming and case-folding; no spellings merged.</p>")
    return "".join(parts)


def note_html(note: str | None) -> str:
    """A short remark under a figure (why the history is short...); nothing when there is none."""
    return f"<p class='dm-note'>{html.escape(note)}</p>" if note else ""


def slot_bound(constraints: Mapping | None, k: int, limit: float | None = None) -> float | None:
    """The slot-concentration bound the run was checked against: the baseline's (constraints.json)
    capped by the absolute `limit`, whichever of them it had."""
    baseline = constraint_bounds(constraints, k).slot_upper_bound if constraints is not None else None
    if limit is None:
        return baseline
    return upper_bound(limit, baseline)[0]


def violations_table(violations: Sequence[Violation] | Mapping) -> pd.DataFrame:
    return pd.DataFrame(_violation_items(violations), columns=["feature_name", "constraint_check_type", "description"])


def violations_html(violations: Sequence[Violation] | Mapping) -> str:
    return table_html(violations_table(violations), "No violations.", index=False)


def histogram_image(statistics: Mapping, baseline_statistics: Mapping | None = None, min_diversity: float | None = None):
    return figure_image(histogram_figure(statistics, baseline_statistics, min_diversity))


def slot_collapse_figure(statistics: Mapping, slot_bound: float | None = None):
    """Per slot, the share of sessions shown that slot's most frequent article (a frozen slot is a tall bar)."""
    import matplotlib.pyplot as plt

    table = slot_collapse_table(statistics)
    figure, axis = plt.subplots(figsize=(7, 3.0))
    shares = table["top_article_share"].fillna(0.0)
    colours = ["#b3261e" if slot_bound is not None and share > slot_bound else "#3b75af" for share in shares]
    axis.bar(table.index, shares, color=colours, label="most frequent article's share")
    if slot_bound is not None:
        axis.axhline(slot_bound, color="#b3261e", linestyle="--", label=f"bound {slot_bound:.0%}")
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("slot (rank in the top list)")
    axis.set_ylabel("share of sessions")
    axis.set_xticks(list(table.index))
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def slot_collapse_html(statistics: Mapping) -> str:
    return table_html(slot_collapse_table(statistics).reset_index(), "No slot figures (nothing was replayed).",
                      index=False)


# --- the trend: this schedule's last hours ------------------------------------------------------

def trend_frame(history: Sequence, statistics: Mapping, violations) -> pd.DataFrame:
    """One row per scheduled hour (earlier reports, then this run): mean, p5, and how it ended."""
    rows = []
    for report in history:
        figures = report.figures
        reliable = report.statistics is not None and figures.get("diversity_reliable", True)
        rows.append({"hour": report.hour, "mean": figures.get("mean") if reliable else None,
                     "p5": figures.get("p5") if reliable else None,
                     "outcome": "failed" if report.statistics is None else
                     verdict(report.statistics, report.violations).status})
    this = verdict(statistics, violations)
    block = statistics[CUSTOM_BLOCK]
    reliable = block.get("diversity_reliable", True)
    rows.append({"hour": this.hour or parse_instant(block["measured_at"]), "mean": block.get("mean") if reliable else None,
                 "p5": block.get("p5") if reliable else None, "outcome": this.status})
    return pd.DataFrame(rows, columns=["hour", "mean", "p5", "outcome"])


def trend_figure(frame: pd.DataFrame, floor: float | None, k: int):
    """Mean and p5 per scheduled hour with the floor; violated hours red, blind or failed hours grey."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    hours = pd.to_datetime(frame["hour"], utc=True)
    figure, axis = plt.subplots(figsize=(7, 3.0))
    axis.plot(hours, frame["mean"], marker="o", color="#3b75af", label=f"mean categories per top-{k}")
    axis.plot(hours, frame["p5"], marker=".", linestyle=":", color="#3b75af", label="p5")
    violated = frame["outcome"] == VIOLATED
    axis.scatter(hours[violated], frame["mean"][violated], s=80, color="#b3261e", zorder=3, label="violated")
    unseen = frame["outcome"].isin([BLIND, "failed"])
    for hour in hours[unseen]:
        axis.axvspan(hour - pd.Timedelta(minutes=30), hour + pd.Timedelta(minutes=30), color="grey", alpha=0.25)
    if floor is not None:
        axis.axhline(floor, color="#b3261e", linestyle="--", label=f"floor {floor:g}")
    axis.set_ylim(0, k + 0.5)
    axis.set_ylabel("distinct categories")
    last = hours.max()  # always the whole day, however few hours left a report
    axis.set_xlim(last - pd.Timedelta(hours=TREND_HOURS, minutes=30), last + pd.Timedelta(minutes=30))
    axis.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3)))
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    axis.set_xlabel(f"scheduled hour, UTC, to {last:%Y-%m-%d %H:%M} (grey: blind or failed)")
    axis.legend(loc="lower left", fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def alarm_spans(changes, end) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(from, to) of every stretch the alarm spent in ALARM, from its state changes ((time, state),
    oldest first, DescribeAlarmHistory); a stretch still open ends at `end`."""
    spans, opened = [], None
    for when, state in changes:
        if state == "ALARM" and opened is None:
            opened = pd.Timestamp(when)
        elif state != "ALARM" and opened is not None:
            spans.append((opened, pd.Timestamp(when)))
            opened = None
    if opened is not None:
        spans.append((opened, pd.Timestamp(end)))
    return spans


def timeline_figure(table: pd.DataFrame, events=(), threshold: float | None = None, alarm_changes=None,
                    title: str = "Replay diversity per hourly run", baseline: float | None = None):
    """Hourly diversity (mean, p5) with the threshold (and the baseline mean), deploys and rollbacks at
    the times they went live (`events`: at / what / detail), and the alarm's real time in ALARM shaded
    (`alarm_changes`: (time, state) from its state history). Titled with the date; times in UTC."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    hours = pd.to_datetime(table["hour"], utc=True)
    figure, axis = plt.subplots(figsize=(9, 4.2))
    axis.plot(hours, table["mean"], marker="o", label="replay: mean categories per top-10")
    axis.plot(hours, table["p5"], marker=".", linestyle=":", label="replay: p5")
    if "live mean" in table:
        axis.plot(hours, table["live mean"], marker="s", color="#8a5300", alpha=0.8, label="live traffic: mean")
    if threshold is not None:
        axis.axhline(threshold, color="#d62728", linestyle="--", label=f"alarm threshold {threshold:g}")
    if baseline is not None:
        axis.axhline(baseline, color="#2ca02c", linestyle=":", label=f"baseline mean {baseline:.2f}")
    end = (hours.max() + pd.Timedelta(hours=1)) if len(hours) else None
    for number, (start, stop) in enumerate(alarm_spans(alarm_changes or [], end)):
        axis.axvspan(start, stop, color="#d62728", alpha=0.12,
                     label="alarm in ALARM (its state history)" if number == 0 else None)
    axis.set_ylim(0, 10.5)
    for event in events:
        if event.what in ("deploy", "rollback"):
            moment = pd.Timestamp(event.at)
            axis.axvline(moment, color="grey" if event.what == "deploy" else "green", linewidth=1)
            axis.annotate(f"{event.what} {moment:%H:%M}\n{event.detail.split(' ')[0]}", (moment, 10.4),
                          fontsize=7, va="top", ha="left")
    axis.set_ylabel("distinct categories per top-10")
    axis.set_xlabel("time (UTC)")
    if len(hours):
        first, last = hours.min(), hours.max()
        days = f"{first:%Y-%m-%d}" if first.date() == last.date() else f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
        axis.set_title(f"{title}, {days} (UTC)", fontsize=10)
        axis.set_xlim(first - pd.Timedelta(minutes=30), last + pd.Timedelta(minutes=30))
        same_day = first.date() == last.date()
        axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M" if same_day else "%m-%d %H:%M", tz="UTC"))
    axis.legend(loc="lower left", fontsize=7)
    figure.tight_layout()
    return figure
