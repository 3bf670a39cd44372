"""Tables and figures for the report notebook and the investigation notebooks.

Everything here reads statistics / violations documents (the files a run leaves in S3), so the
same views work on a run that just happened and on one from last week.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from diversity_monitor.job.model_monitor_files import CUSTOM_BLOCK, Violation


def header_markdown(statistics: Mapping) -> str:
    block = statistics[CUSTOM_BLOCK]
    window = (
        f"{block.get('window_start')} to {block.get('window_end')}" if block.get("window_end") else "ad hoc run"
    )
    lines = [
        f"# Recommender diversity: `{block.get('endpoint')}`",
        f"- Monitoring schedule: `{block.get('monitoring_schedule') or 'none'}`; window: {window}",
        f"- Measured at {block['measured_at']} over {block['sessions_succeeded']} of "
        f"{block['sessions_attempted']} replayed sessions (top-{block['k']}).",
        f"- On-call: if this report shows violations or the diversity alarm fired, open "
        f"`{block.get('runbook', 'runbooks/README.md')}` (runbook `runbooks/diversity_alarm.ipynb`).",
    ]
    serving = block.get("serving")
    if serving:
        lines.append(f"- {serving_line(serving)}")
    if not block["diversity_reliable"]:
        lines.append(
            f"- **Replay incomplete ({block['success_rate']:.1%} succeeded): diversity figures below are not "
            "published and must not be read as healthy or broken.**"
        )
    return "\n".join(lines)


def serving_line(serving: Mapping) -> str:
    """Which endpoint config served the replay, in words (the on-call's first question)."""
    if serving.get("error"):
        return f"Served by: unknown ({serving['error']})"
    models = ", ".join(f"{variant}: `{model}`" for variant, model in (serving.get("models") or {}).items())
    line = f"Served by endpoint config `{serving.get('endpoint_config')}` ({models or 'no variants listed'})"
    if serving.get("changed_during_replay"):
        line += " **but the endpoint changed or was updating during the replay: figures mix configs**"
    return line


def _endpoint_config(block: Mapping) -> str | None:
    serving = block.get("serving") or {}
    return serving.get("endpoint_config")


def summary_table(statistics: Mapping, baseline_statistics: Mapping | None = None) -> pd.DataFrame:
    rows = ["mean", "min", "p5", "max", "distinct_articles", "max_slot_concentration", "success_rate",
            "sessions_succeeded"]
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


def slot_collapse_table(statistics: Mapping) -> pd.DataFrame:
    table = pd.DataFrame(statistics[CUSTOM_BLOCK]["slot_collapse"]).set_index("slot")
    return table[["top_article_id", "top_article_share", "distinct_articles", "lists"]]


def violations_table(violations: Sequence[Violation] | Mapping) -> pd.DataFrame:
    items = violations["violations"] if isinstance(violations, Mapping) else [v.to_dict() for v in violations]
    return pd.DataFrame(items, columns=["feature_name", "constraint_check_type", "description"])


def timeline_figure(table: pd.DataFrame, events=(), threshold: float | None = None):
    """Hourly diversity (mean, p5) with the threshold, deploy/rollback marks and ALARM hours shaded."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    hours = pd.to_datetime(table["hour"], utc=True)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    axis.plot(hours, table["mean"], marker="o", label="mean categories per top-10")
    axis.plot(hours, table["p5"], marker=".", linestyle=":", label="p5")
    if threshold is not None:
        axis.axhline(threshold, color="#d62728", linestyle="--", label=f"alarm threshold {threshold:g}")
    for hour, state in zip(hours, table.get("alarm", [])):
        if state == "ALARM":
            axis.axvspan(hour - pd.Timedelta(minutes=30), hour + pd.Timedelta(minutes=30), color="#d62728", alpha=0.12)
    for event in events:
        if event.what in ("deploy", "rollback"):
            axis.axvline(pd.Timestamp(event.at), color="grey" if event.what == "deploy" else "green", linewidth=1)
            axis.annotate(f"{event.what}\n{event.detail.split(' ')[0]}", (pd.Timestamp(event.at), axis.get_ylim()[1]),
                          fontsize=7, va="top", ha="left")
    axis.set_ylabel("distinct categories")
    axis.set_ylim(0, 10.5)
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure
