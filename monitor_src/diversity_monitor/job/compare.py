"""Step 5 of the run: judge a measurement against the floor, the success rate and the baseline.

The rules (the design notes' worked example must come out as written: baseline mean 6.8, min 4,
p5 5; current mean 6.2, min 3, p5 4 -> exactly one violation, the p5 one):
- replay completeness: below `--min-success-rate` the diversity figures are unreliable, so only
  the completeness violation is reported and diversity is not published (see metrics_file.py);
- the absolute floor: the mean must be at least `--min-diversity` (the alarm's threshold);
- blind is not broken: when the catalog misses more than `MAX_UNKNOWN_ARTICLE_SHARE` of the served
  articles, or more than `MAX_SHORT_LIST_SHARE` of the lists are short or empty, the run says why
  and withholds the figures (as for an incomplete replay): they would be noise, not a collapse;
- sameness, with or without a baseline: the mean list overlap, the top-list share and the freeze
  of the most-concentrated supported slot must stay under the absolute limits (`Limits`);
- with a baseline: p5 must not fall below the baseline's p5 (the stable tail figure); the mean
  must not fall more than `mean_tolerance` below the baseline's; the sameness figures must stay
  under the baseline's bounds, each capped by its absolute limit (no baseline switches a check off);
- the min is reported, never checked: it is one session's extreme and flaps.
Pure: a measurement and documents in, violations out.
"""

from __future__ import annotations

from collections.abc import Mapping

from diversity_monitor.conventions import (
    LIVE_PREFIX,
    SUCCESS_RATE_METRIC,
    diversity_feature,
    list_overlap_feature,
    slot_feature,
    top_list_share_feature,
)
from diversity_monitor.job.contract import Limits
from diversity_monitor.job.measure import Measurement
from diversity_monitor.job.model_monitor_files import Bounds, Violation, blind_reasons, constraint_bounds
from diversity_monitor.measures.metrics import CollapseSummary, DiversitySummary


def check(m: Measurement, *, min_diversity: float, min_success_rate: float,
          constraints: Mapping | None = None, constraints_source: str = "baseline constraints",
          limits: Limits = Limits()) -> list[Violation]:
    """Every violation of this measurement, in a stable order: the replay's, then live traffic's."""
    bounds = constraint_bounds(constraints, m.k, constraints_source) if constraints is not None else None
    violations: list[Violation] = []
    if m.success_rate < min_success_rate:
        violations.append(Violation(
            SUCCESS_RATE_METRIC, "completeness_check",
            f"only {m.sessions_succeeded} of {m.sessions_attempted} sessions replayed "
            f"({m.success_rate:.1%} < {min_success_rate:.0%}); diversity not evaluated. "
            f"Errors: {dict(m.replay_errors) or 'none'}",
        ))
    else:
        blind = blind_reasons(m.diversity, m.k)
        violations += [Violation(feature, "completeness_check", f"{reason}; diversity figures withheld")
                       for feature, reason in blind]
        if not blind:
            violations += _figure_checks(m.diversity, m.collapse, m.k, min_diversity, bounds, limits, prefix="", who="")
    if m.live is not None and m.live.reliable:  # the same bounds for what real users got
        accumulator = m.live.stats.accumulator
        live_diversity = accumulator.diversity()
        blind = blind_reasons(live_diversity, m.k)
        violations += [Violation(LIVE_PREFIX + feature, "completeness_check",
                                 f"live traffic: {reason}; live figures withheld") for feature, reason in blind]
        if not blind:
            violations += _figure_checks(live_diversity, accumulator.collapse(), m.k, min_diversity, bounds, limits,
                                         prefix=LIVE_PREFIX, who="live traffic: ")
    return violations


def upper_bound(limit: float, baseline: float | None) -> tuple[float, str]:
    """The bound a sameness figure must stay under, and where it came from: the baseline's, capped
    by the absolute limit (a baseline can tighten a check, never loosen or switch it off)."""
    if baseline is not None and baseline < limit:
        return baseline, "baseline bound"
    return limit, "limit"


def _figure_checks(d: DiversitySummary, collapse: CollapseSummary, k: int, min_diversity: float,
                   bounds: Bounds | None, limits: Limits, *, prefix: str, who: str) -> list[Violation]:
    """The floor and the baseline's bounds, on one set of lists (the replay's, or live traffic's)."""
    name = prefix + diversity_feature(k)
    violations = []
    if d.mean is not None and d.mean < min_diversity:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"{who}mean categories per top-{k} {d.mean:.2f} is below the floor {min_diversity:g} (--min-diversity)",
        ))
    violations += _sameness_checks(collapse, k, bounds, limits, prefix=prefix, who=who)
    if bounds is None:
        return violations
    if d.p5 is not None and d.p5 < bounds.p5_lower_bound:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"{who}p5 categories per top-{k} {d.p5} is below the baseline p5 {bounds.p5_lower_bound:g}",
        ))
    if d.mean is not None and d.mean < bounds.mean_lower_bound:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"{who}mean categories per top-{k} {d.mean:.2f} is below the baseline bound {bounds.mean_lower_bound:g}",
        ))
    return violations


def _sameness_checks(collapse: CollapseSummary, k: int, bounds: Bounds | None, limits: Limits, *,
                     prefix: str, who: str) -> list[Violation]:
    """Is everyone getting the same thing: the slot freeze, the list overlap, the top-list share."""
    violations = []
    share = collapse.max_slot_concentration
    bound, source = upper_bound(limits.max_slot_share, bounds.slot_upper_bound if bounds else None)
    if share is not None and share > bound:
        worst = max((s for s in collapse.slots if s.top_article_share == share), key=lambda s: s.lists)
        violations.append(Violation(
            prefix + slot_feature(k), "baseline_drift_check",
            f"{who}slot {worst.slot} shows article {worst.top_article_id} to {share:.0%} of sessions "
            f"({source} {bound:.0%}): recommendations are freezing",
        ))
    overlap = collapse.list_overlap
    bound, source = upper_bound(limits.max_list_overlap, bounds.overlap_upper_bound if bounds else None)
    if overlap is not None and overlap > bound:
        violations.append(Violation(
            prefix + list_overlap_feature(k), "baseline_drift_check",
            f"{who}two sessions' top-{k} lists share {overlap:.0%} of their articles on average ({source} "
            f"{bound:.0%}): everyone is getting the same stories",
        ))
    top = collapse.top_list_share
    bound, source = upper_bound(limits.max_top_list_share, bounds.top_list_upper_bound if bounds else None)
    if top is not None and top > bound:
        violations.append(Violation(
            prefix + top_list_share_feature(k), "baseline_drift_check",
            f"{who}{collapse.top_list_lists} sessions ({top:.0%}) got the very same top-{k} list ({source} "
            f"{bound:.0%}): the ranking is not personal",
        ))
    return violations
