"""Model Monitor's files: statistics.json, constraints.json, constraint_violations.json.

Schemas follow the built-in container (see platform-facts.md), so the SageMaker SDK's
`Statistics`, `Constraints` and `ConstraintViolations` read them. Our extra figures live in
one custom block, `diversity_monitor`, which the platform allows and the SDK ignores.

Pure: documents in, documents out. Reading and writing files is the job's business.

Constraint rules (the design notes' worked example must come out as written: baseline mean 6.8,
min 4, p5 5; current mean 6.2, min 3, p5 4 -> exactly one violation, the p5 one):
- p5 must not fall below the baseline's p5 (p5 is the stable tail figure);
- the mean must not fall more than `mean_tolerance` (default 1.0 category) below the baseline's;
- the min is reported, never checked: it is one session's extreme and flaps;
- the absolute floor: the mean must be at least `--min-diversity` (the alarm's threshold);
- slot collapse: the most-concentrated slot must stay under the baseline's share + margin;
- replay completeness: below `--min-success-rate` the diversity figures are unreliable, so only
  the completeness violation is reported and diversity is not published (see cloudwatch.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from diversity_monitor.clock import iso_z
from diversity_monitor.metrics import PERCENTILE_DEFINITION, CollapseSummary, DiversitySummary

SCHEMA_VERSION = 0.0
CUSTOM_BLOCK = "diversity_monitor"
DEFAULT_MEAN_TOLERANCE = 1.0
DEFAULT_SLOT_MARGIN = 0.3
MAX_UNKNOWN_ARTICLE_SHARE = 0.05


class BaselineError(ValueError):
    """A baseline file that is not what the job needs; the message names it."""


def diversity_feature(k: int) -> str:
    return f"top{k}_category_diversity"


def slot_feature(k: int) -> str:
    return f"top{k}_max_slot_concentration"


def distinct_articles_feature(k: int) -> str:
    return f"top{k}_distinct_articles"


SUCCESS_RATE_FEATURE = "replay_success_rate"


@dataclass(frozen=True)
class Measurement:
    """What one replay measured, before any judgement."""

    k: int
    diversity: DiversitySummary
    collapse: CollapseSummary
    sessions_attempted: int
    sessions_succeeded: int
    measured_at: datetime
    replay_errors: Mapping[str, int]

    @property
    def success_rate(self) -> float:
        return self.sessions_succeeded / self.sessions_attempted if self.sessions_attempted else 0.0


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str

    def to_dict(self) -> dict:
        return {
            "feature_name": self.feature_name,
            "constraint_check_type": self.constraint_check_type,
            "description": self.description,
        }


def _numeric(name: str, inferred_type: str, present: int, missing: int, mean, total, std_dev, low, high,
             buckets: list[dict] | None = None) -> dict:
    stats = {
        "common": {"num_present": present, "num_missing": missing},
        "mean": mean, "sum": total, "std_dev": std_dev, "min": low, "max": high,
    }
    if buckets is not None:
        stats["distribution"] = {"kll": {"buckets": buckets, "sketch": {"parameters": {"c": 0.64, "k": 2048.0}, "data": []}}}
    return {"name": name, "inferred_type": inferred_type, "numerical_statistics": stats}


def _scalar(name: str, inferred_type: str, value) -> dict:
    present = value is not None
    return _numeric(name, inferred_type, int(present), int(not present), value, value, 0.0 if present else None, value, value)


def statistics_document(m: Measurement, *, reliable: bool, context: Mapping[str, object] | None = None) -> dict:
    d = m.diversity
    variance = (
        sum(count * (value - d.mean) ** 2 for value, count in enumerate(d.histogram)) / d.lists if d.lists else None
    )
    buckets = [{"lower_bound": float(v), "upper_bound": float(v + 1), "count": float(c)} for v, c in enumerate(d.histogram)]
    features = [
        _numeric(diversity_feature(m.k), "Integral", d.lists, m.sessions_attempted - d.lists, d.mean,
                 sum(v * c for v, c in enumerate(d.histogram)), math.sqrt(variance) if variance is not None else None,
                 d.min, d.max, buckets),
        _scalar(SUCCESS_RATE_FEATURE, "Fractional", m.success_rate),
        _scalar(slot_feature(m.k), "Fractional", m.collapse.max_slot_concentration),
        _scalar(distinct_articles_feature(m.k), "Integral", m.collapse.distinct_articles),
    ]
    custom = {
        "k": m.k,
        "percentile_definition": PERCENTILE_DEFINITION,
        "mean": d.mean, "min": d.min, "p5": d.p5, "max": d.max,
        "histogram": list(d.histogram),
        "sessions_attempted": m.sessions_attempted,
        "sessions_succeeded": m.sessions_succeeded,
        "success_rate": m.success_rate,
        "diversity_reliable": reliable,
        "replay_errors": dict(m.replay_errors),
        "unknown_articles": d.unknown_articles,
        "lists_with_unknown_articles": d.lists_with_unknown_articles,
        "short_lists": d.short_lists,
        "distinct_articles": m.collapse.distinct_articles,
        "max_slot_concentration": m.collapse.max_slot_concentration,
        "slot_collapse": [
            {"slot": s.slot, "lists": s.lists, "top_article_id": s.top_article_id,
             "top_article_share": s.top_article_share, "distinct_articles": s.distinct_articles}
            for s in m.collapse.slots
        ],
        "measured_at": iso_z(m.measured_at),
        **dict(context or {}),
    }
    return {"version": SCHEMA_VERSION, "dataset": {"item_count": d.lists}, "features": features, CUSTOM_BLOCK: custom}


def figures(statistics: Mapping, source: str = "statistics") -> dict:
    """The custom block of a statistics document, checked for what comparisons need."""
    if not isinstance(statistics, Mapping) or not isinstance(statistics.get(CUSTOM_BLOCK), Mapping):
        raise BaselineError(f"{source}: not a diversity monitor statistics.json (no {CUSTOM_BLOCK!r} block)")
    block = statistics[CUSTOM_BLOCK]
    for key, kind in (("k", int), ("mean", (int, float)), ("p5", int), ("histogram", list)):
        if not isinstance(block.get(key), kind) or isinstance(block.get(key), bool):
            raise BaselineError(f"{source}: {CUSTOM_BLOCK}.{key} is missing or has the wrong type")
    return dict(block)


def constraints_document(baseline_statistics: Mapping, *, mean_tolerance: float = DEFAULT_MEAN_TOLERANCE,
                         slot_margin: float = DEFAULT_SLOT_MARGIN) -> dict:
    """constraints.json suggested from a baseline run (the data scientist may edit the bounds)."""
    base = figures(baseline_statistics, "baseline statistics")
    k = base["k"]
    slot_bound = min(1.0, (base.get("max_slot_concentration") or 0.0) + slot_margin)
    return {
        "version": SCHEMA_VERSION,
        "features": [
            {
                "name": diversity_feature(k), "inferred_type": "Integral", "completeness": 1.0,
                "num_constraints": {"is_non_negative": True},
                "diversity_constraints": {
                    "mean_lower_bound": round(base["mean"] - mean_tolerance, 6),
                    "p5_lower_bound": base["p5"],
                    "baseline": {"mean": base["mean"], "min": base.get("min"), "p5": base["p5"]},
                },
            },
            {
                "name": slot_feature(k), "inferred_type": "Fractional", "completeness": 1.0,
                "num_constraints": {"is_non_negative": True},
                "upper_bound": round(slot_bound, 6),
            },
        ],
        "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled"},
        CUSTOM_BLOCK: {"k": k, "mean_tolerance": mean_tolerance, "slot_margin": slot_margin},
    }


def _constraint(constraints: Mapping, name: str, source: str) -> Mapping | None:
    features = constraints.get("features")
    if not isinstance(features, list):
        raise BaselineError(f"{source}: 'features' must be a list")
    for feature in features:
        if isinstance(feature, Mapping) and feature.get("name") == name:
            return feature
    return None


def check(m: Measurement, *, min_diversity: float, min_success_rate: float,
          constraints: Mapping | None = None, constraints_source: str = "baseline constraints") -> list[Violation]:
    """Every violation of this measurement, in a stable order."""
    violations: list[Violation] = []
    name = diversity_feature(m.k)
    if m.success_rate < min_success_rate:
        violations.append(Violation(
            SUCCESS_RATE_FEATURE, "completeness_check",
            f"only {m.sessions_succeeded} of {m.sessions_attempted} sessions replayed "
            f"({m.success_rate:.1%} < {min_success_rate:.0%}); diversity not evaluated. "
            f"Errors: {dict(m.replay_errors) or 'none'}",
        ))
        return violations
    d = m.diversity
    if d.mean is not None and d.mean < min_diversity:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"mean categories per top-{m.k} {d.mean:.2f} is below the floor {min_diversity:g} (--min-diversity)",
        ))
    if d.lists and d.lists_with_unknown_articles / d.lists > MAX_UNKNOWN_ARTICLE_SHARE:
        violations.append(Violation(
            name, "completeness_check",
            f"{d.lists_with_unknown_articles} of {d.lists} lists hold articles missing from the catalog "
            f"({d.unknown_articles} articles): refresh the catalog",
        ))
    if constraints is None:
        return violations
    feature = _constraint(constraints, name, constraints_source)
    if feature is None:
        raise BaselineError(f"{constraints_source}: no constraints for feature {name!r} (was the baseline built with k={m.k}?)")
    bounds = feature.get("diversity_constraints")
    if not isinstance(bounds, Mapping):
        raise BaselineError(f"{constraints_source}: feature {name!r} has no 'diversity_constraints' object")
    p5_bound, mean_bound = bounds.get("p5_lower_bound"), bounds.get("mean_lower_bound")
    for key, value in (("p5_lower_bound", p5_bound), ("mean_lower_bound", mean_bound)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise BaselineError(f"{constraints_source}: {name}.diversity_constraints.{key} must be a number, got {value!r}")
    if p5_bound is not None and d.p5 is not None and d.p5 < p5_bound:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"p5 categories per top-{m.k} {d.p5} is below the baseline p5 {p5_bound:g}",
        ))
    if mean_bound is not None and d.mean is not None and d.mean < mean_bound:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"mean categories per top-{m.k} {d.mean:.2f} is below the baseline bound {mean_bound:g}",
        ))
    slot = _constraint(constraints, slot_feature(m.k), constraints_source)
    upper = slot.get("upper_bound") if slot else None
    share = m.collapse.max_slot_concentration
    if isinstance(upper, (int, float)) and share is not None and share > upper:
        worst = max(m.collapse.slots, key=lambda s: s.top_article_share or 0)
        violations.append(Violation(
            slot_feature(m.k), "baseline_drift_check",
            f"slot {worst.slot} shows article {worst.top_article_id} to {share:.0%} of sessions "
            f"(bound {upper:.0%}): recommendations are freezing",
        ))
    return violations


def violations_document(violations: list[Violation]) -> dict:
    return {"violations": [violation.to_dict() for violation in violations]}
