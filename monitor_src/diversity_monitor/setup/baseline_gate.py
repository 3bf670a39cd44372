"""The deploy gate on a candidate model's baseline: pass, or fail with a verdict a human can read.

A candidate is replayed before it takes traffic (`job.build_baseline`) and its figures are judged
by a registry of rules:
- `absolute_floor`: its mean categories per top-k must be at least `min_diversity` (the same floor
  the hourly monitor and the alarm use);
- `drop_from_previous`: its mean must not fall more than `max_mean_drop` below the previous model
  version's baseline (the same tolerance the baseline constraints give the hourly monitor);
- `vouched_for`: the monitor could see what it served (catalog coverage, full lists: `blind_reasons`);
- `list_overlap`, `top_list_share`, `slot_freeze`: the same absolute limits the hourly run applies
  (`contract.Limits`), so a model that gives everyone the same list is refused however many
  categories that list spans.
The verdict is written next to the baseline as `gate.json`, so a rejected baseline is marked as
such. notebooks/02_build_baseline.ipynb raises `GateFailed` (papermill then fails, and a
pipeline running it stops the deploy); `diversity-monitor baseline-gate` does the same for the
SageMaker Pipelines step (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import pandas as pd

from diversity_monitor import storage
from diversity_monitor.cli import number_option
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    DEFAULT_MAX_LIST_OVERLAP,
    DEFAULT_MAX_MEAN_DROP,
    DEFAULT_MAX_SLOT_SHARE,
    DEFAULT_MAX_TOP_LIST_SHARE,
    DEFAULT_MIN_DIVERSITY,
    GATE_FILE,
    MAX_TOP_K,
    STATISTICS_FILE,
)
from diversity_monitor.job import contract
from diversity_monitor.job import report_views as report
from diversity_monitor.job.baseline import load_json_document
from diversity_monitor.job.model_monitor_files import BaselineError, figures


class GateFailed(RuntimeError):
    """The candidate must not be deployed; the message is the verdict."""


@dataclass(frozen=True)
class GateVerdict:
    model_version: str
    passed: bool
    reasons: list[str]  # why it failed (empty when passed)
    checks: list[str]  # what was checked, one line each
    candidate: dict
    previous: dict | None

    @property
    def text(self) -> str:
        head = f"GATE {'PASSED' if self.passed else 'FAILED'} for model {self.model_version}"
        lines = self.reasons if not self.passed else self.checks
        return head + ": " + "; ".join(lines)

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.text}


@dataclass(frozen=True)
class GateSettings:
    min_diversity: float = DEFAULT_MIN_DIVERSITY
    max_mean_drop: float = DEFAULT_MAX_MEAN_DROP
    max_list_overlap: float = DEFAULT_MAX_LIST_OVERLAP
    max_top_list_share: float = DEFAULT_MAX_TOP_LIST_SHARE
    max_slot_share: float = DEFAULT_MAX_SLOT_SHARE


Rule = Callable[[dict, dict | None, GateSettings], tuple[bool, str] | None]  # (ok, description) or None: not applicable


def _absolute_floor(candidate: dict, previous: dict | None, settings: GateSettings):
    ok = candidate["mean"] >= settings.min_diversity
    relation = "at or above" if ok else "below"
    return ok, f"mean {candidate['mean']:.2f} categories per top-{candidate['k']} is {relation} the floor {settings.min_diversity:g}"


def _drop_from_previous(candidate: dict, previous: dict | None, settings: GateSettings):
    if previous is None:
        return None
    drop = previous["mean"] - candidate["mean"]
    ok = drop <= settings.max_mean_drop
    what = f"mean {candidate['mean']:.2f} vs previous baseline {previous['mean']:.2f} (drop {drop:+.2f}"
    return ok, f"{what}, allowed {settings.max_mean_drop:g})" if ok else f"{what}, more than the allowed {settings.max_mean_drop:g})"


def _vouched_for(candidate: dict, previous: dict | None, settings: GateSettings):
    reasons = candidate.get("blind_reasons")
    if reasons is None:
        return False, "the candidate's statistics predate the completeness figures: rebuild its baseline"
    if reasons:
        return False, "the monitor cannot vouch for the candidate's figures: " + "; ".join(reasons)
    return True, "the catalog knows what the candidate served and its lists are full"


def _upper_limit(figure: str, what: str, limit_of: Callable[[GateSettings], float]) -> Rule:
    """A rule: the candidate's `figure` must be at most the setting's limit (the hourly run's limit)."""
    def rule(candidate: dict, previous: dict | None, settings: GateSettings):
        value, limit = candidate.get(figure), limit_of(settings)
        if value is None:
            return False, f"{what}: not in the candidate's statistics (rebuild its baseline)"
        ok = value <= limit
        return ok, f"{what} {value:.2f} is {'within' if ok else 'above'} the limit {limit:g}"
    return rule


RULES: dict[str, Rule] = {
    "absolute_floor": _absolute_floor,
    "drop_from_previous": _drop_from_previous,
    "vouched_for": _vouched_for,
    "list_overlap": _upper_limit("list_overlap", "mean list overlap between sessions",
                                 lambda settings: settings.max_list_overlap),
    "top_list_share": _upper_limit("top_list_share", "share of sessions served the most common list",
                                   lambda settings: settings.max_top_list_share),
    "slot_freeze": _upper_limit("max_slot_concentration", "most frozen slot's share",
                                lambda settings: settings.max_slot_share),
}


def evaluate(model_version: str, candidate_statistics: Mapping, previous_statistics: Mapping | None = None,
             settings: GateSettings = GateSettings()) -> GateVerdict:
    candidate = figures(candidate_statistics, f"candidate {model_version} statistics")
    previous = figures(previous_statistics, "previous baseline statistics") if previous_statistics is not None else None
    if previous is not None and previous["k"] != candidate["k"]:
        raise BaselineError(f"previous baseline is top-{previous['k']}, candidate top-{candidate['k']}: not comparable")
    reasons, checks = [], []
    for rule in RULES.values():
        outcome = rule(candidate, previous, settings)
        if outcome is None:
            continue
        ok, description = outcome
        checks.append(description)
        if not ok:
            reasons.append(description)
    return GateVerdict(model_version, not reasons, reasons, checks, candidate, previous)


def baseline_uri(baselines_root: str, model_version: str) -> str:
    return storage.join(baselines_root, model_version)


def load_statistics(baselines_root: str, model_version: str) -> dict:
    uri = storage.join(baseline_uri(baselines_root, model_version), STATISTICS_FILE)
    return load_json_document(uri, f"baseline statistics of model {model_version}")


def write_verdict(baseline_folder_uri: str, verdict: GateVerdict) -> str:
    uri = storage.join(baseline_folder_uri, GATE_FILE)
    storage.write_bytes(uri, json.dumps(verdict.to_dict(), indent=2, default=str).encode() + b"\n")
    return uri


def enforce(verdict: GateVerdict) -> GateVerdict:
    if not verdict.passed:
        raise GateFailed(verdict.text)
    return verdict


def comparison_table(verdict: GateVerdict) -> pd.DataFrame:
    rows = ["mean", "min", "p5", "max", "distinct_articles", "max_slot_concentration", "list_overlap",
            "top_list_share", "unknown_article_share", "short_list_share", "sessions_succeeded"]
    table = pd.DataFrame({f"candidate {verdict.model_version}": [verdict.candidate.get(row) for row in rows]}, index=rows)
    if verdict.previous is not None:
        table[f"previous {verdict.previous.get('model_version', 'baseline')}"] = [verdict.previous.get(row) for row in rows]
    return table


def comparison_figure(verdict: GateVerdict, settings: GateSettings = GateSettings()):
    """Share of sessions per distinct-category count: candidate bars, previous baseline as a step line."""
    import matplotlib.pyplot as plt

    candidate = {CUSTOM_BLOCK: verdict.candidate}
    previous = {CUSTOM_BLOCK: verdict.previous} if verdict.previous is not None else None
    frame = report.histogram_frame(candidate, previous)
    figure, axis = plt.subplots(figsize=(7, 3.2))
    axis.bar(frame.index, frame["current"], color="#3b75af", label=f"candidate {verdict.model_version}")
    if "baseline" in frame:
        axis.step(frame.index, frame["baseline"], where="mid", color="#d62728", linewidth=2,
                  label=f"previous {verdict.previous.get('model_version', 'baseline')}")
    axis.axvline(settings.min_diversity, color="grey", linestyle="--", label=f"floor {settings.min_diversity:g}")
    axis.set_xlabel("distinct categories in the top list")
    axis.set_ylabel("share of sessions")
    axis.set_xticks(list(frame.index))
    axis.set_title(verdict.text[:90], fontsize=9, color="#2a7a2a" if verdict.passed else "#d62728")
    axis.legend()
    figure.tight_layout()
    return figure


# --- `diversity-monitor baseline-gate`: the pipeline's gate step ----------------------------------

def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baselines", required=True, metavar="URI", help="folder holding baselines/<model-version>/")
    parser.add_argument("--model-version", required=True, help="the candidate's version (its baseline must exist)")
    parser.add_argument("--previous-version", default=None, help="the version it replaces (omit for the first model)")
    parser.add_argument("--min-diversity", type=number_option("--min-diversity", 0, MAX_TOP_K), default=DEFAULT_MIN_DIVERSITY,
                        help=f"absolute floor for the mean (default {DEFAULT_MIN_DIVERSITY:g})")
    parser.add_argument("--max-mean-drop", type=number_option("--max-mean-drop", 0, MAX_TOP_K), default=DEFAULT_MAX_MEAN_DROP,
                        help=f"largest allowed drop of the mean below the previous baseline (default {DEFAULT_MAX_MEAN_DROP:g})")
    contract.add_limit_arguments(parser)  # the hourly run's limits, so a candidate is held to what it will be judged by
    parser.set_defaults(handler=_gate)


def _gate(args: argparse.Namespace) -> int:
    try:
        candidate = load_statistics(args.baselines, args.model_version)
        previous = load_statistics(args.baselines, args.previous_version) if args.previous_version else None
        settings = GateSettings(args.min_diversity, args.max_mean_drop, args.max_list_overlap,
                                args.max_top_list_share, args.max_slot_share)
        verdict = evaluate(args.model_version, candidate, previous, settings)
    except BaselineError as error:
        print(f"baseline-gate failed: {error}", file=sys.stderr)
        return 1
    write_verdict(baseline_uri(args.baselines, args.model_version), verdict)
    print(verdict.text)
    return 0 if verdict.passed else 1
