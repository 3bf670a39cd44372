"""Step 6 of the run: Model Monitor's files: statistics.json, constraints.json, constraint_violations.json.

Schemas follow the built-in container (see platform-facts.md), so the SageMaker SDK's
`Statistics`, `Constraints` and `ConstraintViolations` read them. Our extra figures live in
one custom block (`conventions.CUSTOM_BLOCK`), which the platform allows and the SDK ignores.

Pure: documents in, documents out. Reading and writing files is the job's business; the
judgement that produces violations is compare.py's.

Baseline documents are checked whole before a run replays anything (`figures`,
`constraint_bounds`): every bound the checks use must be there with the right type, and the
baseline's k must be the run's k. A bound that is missing is an error, never a skipped check;
to loosen a check, edit its bound (mean_lower_bound 0). The upper bounds on sameness (slot share,
list overlap, top-list share) are capped by the run's absolute limits (`contract.Limits`), when
the constraints are suggested and again when they are applied, so no baseline switches them off;
the overlap and top-list bounds may be absent from older constraints (the limit then applies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from diversity_monitor.clock import iso_z
from diversity_monitor.conventions import (
    CUSTOM_BLOCK,
    DEFAULT_MEAN_TOLERANCE,
    DEFAULT_OVERLAP_MARGIN,
    DEFAULT_SLOT_MARGIN,
    DEFAULT_TOP_LIST_MARGIN,
    MAX_SHORT_LIST_SHARE,
    MAX_UNKNOWN_ARTICLE_SHARE,
    MIN_LIVE_LISTS,
    MIN_SLOT_SUPPORT,
    SHORT_LIST_SHARE_METRIC,
    SUCCESS_RATE_METRIC,
    UNKNOWN_ARTICLE_SHARE_METRIC,
    distinct_articles_feature,
    diversity_feature,
    list_overlap_feature,
    slot_feature,
    top_list_share_feature,
)
from diversity_monitor.job.contract import Limits
from diversity_monitor.job.measure import Measurement
from diversity_monitor.measures.metrics import PERCENTILE_DEFINITION, CollapseSummary, DiversitySummary

SCHEMA_VERSION = 0.0


class BaselineError(ValueError):
    """A baseline file that is not what the job needs; the message names it."""


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


def blind_reasons(d: DiversitySummary, k: int) -> list[tuple[str, str]]:
    """Why figures over these lists cannot be vouched for, as (metric, reason) (empty: they can). Blind is not broken: a
    catalog that misses what is served, or lists too short to count, say nothing about diversity."""
    reasons = []
    unknown, short = d.unknown_article_share, d.short_list_share
    if unknown is not None and unknown > MAX_UNKNOWN_ARTICLE_SHARE:
        reasons.append((UNKNOWN_ARTICLE_SHARE_METRIC, f"the catalog does not know {d.unknown_articles} of the {d.articles_served} articles served "
                       f"({unknown:.1%} > {MAX_UNKNOWN_ARTICLE_SHARE:.0%}; in {d.lists_with_unknown_articles} of "
                       f"{d.lists} lists): refresh the catalog"))
    if short is not None and short > MAX_SHORT_LIST_SHARE:
        reasons.append((SHORT_LIST_SHARE_METRIC, f"{d.short_lists} of {d.lists} lists hold fewer than {k} articles ({short:.1%} > "
                       f"{MAX_SHORT_LIST_SHARE:.0%}): the endpoint is returning short or empty lists"))
    return reasons


def _sameness(d: DiversitySummary, c: CollapseSummary) -> dict:
    """The completeness and cross-session figures, shared by the replay's block and live traffic's."""
    return {
        "articles_served": d.articles_served,
        "unknown_article_share": d.unknown_article_share,
        "short_list_share": d.short_list_share,
        "list_overlap": c.list_overlap,
        "top_list_share": c.top_list_share,
        "top_list_lists": c.top_list_lists,
        "min_slot_support": MIN_SLOT_SUPPORT,
    }


def statistics_document(m: Measurement, *, reliable: bool, context: Mapping[str, object] | None = None) -> dict:
    """statistics.json; `reliable` false (replay too incomplete) or a blind measurement (see
    `blind_reasons`) marks the diversity figures as withheld."""
    d = m.diversity
    blind = blind_reasons(d, m.k)
    reliable = reliable and not blind
    variance = (
        sum(count * (value - d.mean) ** 2 for value, count in enumerate(d.histogram)) / d.lists if d.lists else None
    )
    buckets = [{"lower_bound": float(v), "upper_bound": float(v + 1), "count": float(c)} for v, c in enumerate(d.histogram)]
    features = [
        _numeric(diversity_feature(m.k), "Integral", d.lists, m.sessions_attempted - d.lists, d.mean,
                 sum(v * c for v, c in enumerate(d.histogram)), math.sqrt(variance) if variance is not None else None,
                 d.min, d.max, buckets),
        _scalar(SUCCESS_RATE_METRIC, "Fractional", m.success_rate),
        _scalar(slot_feature(m.k), "Fractional", m.collapse.max_slot_concentration),
        _scalar(distinct_articles_feature(m.k), "Integral", m.collapse.distinct_articles),
        _scalar(list_overlap_feature(m.k), "Fractional", m.collapse.list_overlap),
        _scalar(top_list_share_feature(m.k), "Fractional", m.collapse.top_list_share),
        _scalar(UNKNOWN_ARTICLE_SHARE_METRIC, "Fractional", d.unknown_article_share),
        _scalar(SHORT_LIST_SHARE_METRIC, "Fractional", d.short_list_share),
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
        "blind_reasons": [reason for _, reason in blind],
        "replay_errors": dict(m.replay_errors),
        "unknown_articles": d.unknown_articles,
        "lists_with_unknown_articles": d.lists_with_unknown_articles,
        "short_lists": d.short_lists,
        "distinct_articles": m.collapse.distinct_articles,
        "max_slot_concentration": m.collapse.max_slot_concentration,
        **_sameness(d, m.collapse),
        "merged_category_variants": dict(m.merged_category_variants),
        "category_shares": [{"category": category, "share": share} for category, share in m.collapse.category_shares],
        "slot_collapse": [
            {"slot": s.slot, "lists": s.lists, "top_article_id": s.top_article_id,
             "top_article_share": s.top_article_share, "distinct_articles": s.distinct_articles,
             "supported": bool(d.lists) and s.lists >= MIN_SLOT_SUPPORT * d.lists}
            for s in m.collapse.slots
        ],
        "measured_at": iso_z(m.measured_at),
        **({"serving": m.serving.to_dict()} if m.serving is not None else {}),
        **({"live": live_block(m)} if m.live is not None else {}),
        **dict(context or {}),
    }
    return {"version": SCHEMA_VERSION, "dataset": {"item_count": d.lists}, "features": features, CUSTOM_BLOCK: custom}


def live_block(m: Measurement) -> dict:
    """The hour's live traffic, apart from the replay figures: its lists, its figures (when it had
    any), whether they are enough to judge and publish, and every line the capture pass could not read."""
    live, sampling = m.live, (m.serving.capture_sampling_percentage if m.serving is not None else None)
    block: dict = {"lists": live.lists, "reliable": live.reliable, "min_lists": MIN_LIVE_LISTS, "note": live.note,
                   "capture_sampling_percentage": sampling}
    stats = live.stats
    if stats is None:
        return block
    diversity, collapse = stats.accumulator.diversity(), stats.accumulator.collapse()
    blind = blind_reasons(diversity, m.k)
    if blind:  # figures it cannot vouch for are neither judged nor published
        block["reliable"] = False
    block["blind_reasons"] = [reason for _, reason in blind]
    block.update(_sameness(diversity, collapse))
    block.update({
        "mean": diversity.mean, "min": diversity.min, "p5": diversity.p5, "max": diversity.max,
        "histogram": list(diversity.histogram), "short_lists": diversity.short_lists,
        "unknown_articles": diversity.unknown_articles,
        "lists_with_unknown_articles": diversity.lists_with_unknown_articles,
        "distinct_articles": collapse.distinct_articles, "max_slot_concentration": collapse.max_slot_concentration,
        "files_read": stats.files_read, "records_read": stats.records_read,
        "replay_excluded": stats.replay_excluded, "outside_window": stats.outside_window,
        "without_output": stats.without_output,
        "malformed": stats.malformed.to_dict(), "unreadable_responses": stats.unreadable_responses.to_dict(),
    })
    return block


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def figures(statistics: Mapping, source: str = "statistics", k: int | None = None) -> dict:
    """The custom block of a statistics document, checked whole for what comparisons and the report use.

    `k`, when given, must be the document's k: figures of a top-5 baseline say nothing about top-10 lists.
    """
    if not isinstance(statistics, Mapping) or not isinstance(statistics.get(CUSTOM_BLOCK), Mapping):
        raise BaselineError(f"{source}: not a diversity monitor statistics.json (no {CUSTOM_BLOCK!r} block)")
    block = statistics[CUSTOM_BLOCK]

    def wrong(key: str, expected: str) -> BaselineError:
        return BaselineError(f"{source}: {CUSTOM_BLOCK}.{key} must be {expected}, got {block.get(key)!r}")

    block_k = block.get("k")
    if not _is_count(block_k) or block_k < 1:
        raise wrong("k", "a whole number of at least 1")
    if k is not None and block_k != k:
        raise BaselineError(f"{source}: the baseline was measured with k={block_k} (top-{block_k} lists) but this run "
                            f"uses --top-k {k}; build a baseline with --top-k {k}")
    if not _is_number(block.get("mean")) or not 0 <= block["mean"] <= block_k:
        raise wrong("mean", f"a number between 0 and k={block_k}")
    for key in ("min", "p5", "max"):
        if not _is_count(block.get(key)) or block[key] > block_k:
            raise wrong(key, f"a whole number between 0 and k={block_k}")
    histogram = block.get("histogram")
    if not isinstance(histogram, list) or len(histogram) != block_k + 1 or not all(map(_is_count, histogram)):
        raise wrong("histogram", f"a list of {block_k + 1} session counts (0..k categories)")
    if not sum(histogram):
        raise wrong("histogram", "counts of at least one session")
    for key in ("sessions_attempted", "sessions_succeeded", "distinct_articles"):
        if key in block and not _is_count(block[key]):
            raise wrong(key, "a whole number")
    for key in ("success_rate", "max_slot_concentration", "list_overlap", "top_list_share",
                "unknown_article_share", "short_list_share"):
        if block.get(key) is not None and (not _is_number(block[key]) or not 0 <= block[key] <= 1):
            raise wrong(key, "a share between 0 and 1 (or null)")
    return dict(block)


def constraints_document(baseline_statistics: Mapping, *, mean_tolerance: float = DEFAULT_MEAN_TOLERANCE,
                         slot_margin: float = DEFAULT_SLOT_MARGIN, overlap_margin: float = DEFAULT_OVERLAP_MARGIN,
                         top_list_margin: float = DEFAULT_TOP_LIST_MARGIN, limits: Limits = Limits()) -> dict:
    """constraints.json suggested from a baseline run (the data scientist may edit the bounds).

    Each upper bound is the baseline's figure plus a margin, capped by the absolute limit: a
    baseline of a collapsed model gets the limit, never a bound that switches the check off."""
    base = figures(baseline_statistics, "baseline statistics")
    k = base["k"]

    def capped(figure: str, margin: float, limit: float) -> float:
        return round(min(limit, (base.get(figure) or 0.0) + margin), 6)

    slot_bound = capped("max_slot_concentration", slot_margin, limits.max_slot_share)
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
                "upper_bound": slot_bound,
            },
            {
                "name": list_overlap_feature(k), "inferred_type": "Fractional", "completeness": 1.0,
                "num_constraints": {"is_non_negative": True},
                "upper_bound": capped("list_overlap", overlap_margin, limits.max_list_overlap),
            },
            {
                "name": top_list_share_feature(k), "inferred_type": "Fractional", "completeness": 1.0,
                "num_constraints": {"is_non_negative": True},
                "upper_bound": capped("top_list_share", top_list_margin, limits.max_top_list_share),
            },
        ],
        "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled"},
        CUSTOM_BLOCK: {"k": k, "mean_tolerance": mean_tolerance, "slot_margin": slot_margin,
                       "overlap_margin": overlap_margin, "top_list_margin": top_list_margin,
                       "capped_by": {"max_slot_share": limits.max_slot_share,
                                     "max_list_overlap": limits.max_list_overlap,
                                     "max_top_list_share": limits.max_top_list_share}},
    }


@dataclass(frozen=True)
class Bounds:
    """The bounds constraints.json sets for a run with top-k lists."""

    p5_lower_bound: float
    mean_lower_bound: float
    slot_upper_bound: float
    overlap_upper_bound: float | None = None  # absent from constraints built before the measure
    top_list_upper_bound: float | None = None


def _constraint(features: list, name: str) -> Mapping | None:
    for feature in features:
        if isinstance(feature, Mapping) and feature.get("name") == name:
            return feature
    return None


def constraint_bounds(constraints: Mapping, k: int, source: str = "baseline constraints") -> Bounds:
    """Every bound the checks use, checked whole at load; BaselineError lists every problem at once."""
    problems = constraint_problems(constraints, k)
    if problems:
        if len(problems) == 1:
            raise BaselineError(f"{source}: {problems[0]}")
        raise BaselineError(f"{source}: {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems))
    features = constraints["features"]
    bounds = _constraint(features, diversity_feature(k))["diversity_constraints"]
    upper = _constraint(features, slot_feature(k))["upper_bound"]
    optional = {key: float(entry["upper_bound"]) for key, entry in (
        ("overlap_upper_bound", _constraint(features, list_overlap_feature(k))),
        ("top_list_upper_bound", _constraint(features, top_list_share_feature(k)))) if entry is not None}
    return Bounds(float(bounds["p5_lower_bound"]), float(bounds["mean_lower_bound"]), float(upper), **optional)


def constraint_problems(constraints: Mapping, k: int) -> list[str]:
    """The validation pass over a constraints document (botocore's way: every problem, not the first).

    The one place that says what a usable constraints.json is: the shape, no feature named twice
    (the first, perhaps loose, entry would win unseen), and every bound in its range (a mean bound
    above k violates forever; a share outside [0, 1] means nothing).
    """
    if not isinstance(constraints, Mapping):
        return [f"expected a JSON object, got {type(constraints).__name__}"]
    features = constraints.get("features")
    if not isinstance(features, list):
        return ["'features' must be a list"]
    problems: list[str] = []
    block = constraints.get(CUSTOM_BLOCK)
    if isinstance(block, Mapping) and "k" in block and block["k"] != k:
        problems.append(f"the constraints were built for k={block.get('k')!r} (top-{block.get('k')} lists) "
                        f"but this run uses --top-k {k}; build a baseline with --top-k {k}")
    positions: dict[str, list[int]] = {}
    for index, feature in enumerate(features):
        if not isinstance(feature, Mapping) or not isinstance(feature.get("name"), str):
            problems.append(f"features[{index}] must be an object with a 'name'")
            continue
        positions.setdefault(feature["name"], []).append(index)
    for name, where in positions.items():
        if len(where) > 1:
            problems.append(f"feature {name!r} is named {len(where)} times "
                            f"({', '.join(f'features[{i}]' for i in where)}); keep one entry")
    name = diversity_feature(k)
    feature = _constraint(features, name)
    if feature is None:
        problems.append(f"no constraints for feature {name!r} (this run uses --top-k {k}; "
                        f"the file has {sorted(positions) or 'no named features'})")
    elif not isinstance(feature.get("diversity_constraints"), Mapping):
        problems.append(f"feature {name!r} has no 'diversity_constraints' object")
    else:
        bounds = feature["diversity_constraints"]
        for key in ("p5_lower_bound", "mean_lower_bound"):
            if key not in bounds:
                problems.append(f"{name}.diversity_constraints.{key} is missing (a number is required; "
                                "to loosen the check, lower the bound)")
            elif not _is_number(bounds[key]):
                problems.append(f"{name}.diversity_constraints.{key} must be a number, got {bounds[key]!r}")
            elif not 0 <= bounds[key] <= k:
                problems.append(f"{name}.diversity_constraints.{key} must be between 0 and k={k}, got {bounds[key]!r} "
                                f"(a top-{k} list holds 0 to {k} categories)")
    slot_name = slot_feature(k)
    slot = _constraint(features, slot_name)
    if slot is None:
        problems.append(f"no constraints for feature {slot_name!r} (its upper_bound is the slot-collapse check)")
    elif "upper_bound" not in slot:
        problems.append(f"{slot_name}.upper_bound is missing (a share between 0 and 1 is required)")
    elif not _is_number(slot["upper_bound"]) or not 0 <= slot["upper_bound"] <= 1:
        problems.append(f"{slot_name}.upper_bound must be a share between 0 and 1, got {slot['upper_bound']!r}")
    # The sameness bounds are optional (older constraints have none: the run's absolute limits apply).
    for feature_name in (list_overlap_feature(k), top_list_share_feature(k)):
        entry = _constraint(features, feature_name)
        if entry is not None and (not _is_number(entry.get("upper_bound")) or not 0 <= entry["upper_bound"] <= 1):
            problems.append(f"{feature_name}.upper_bound must be a share between 0 and 1, got {entry.get('upper_bound')!r}")
    return problems


def violations_document(violations: list[Violation]) -> dict:
    return {"violations": [violation.to_dict() for violation in violations]}
