"""Step 5 of the run: judge a measurement against the floor, the success rate and the baseline.

The rules (the design notes' worked example must come out as written: baseline mean 6.8, min 4,
p5 5; current mean 6.2, min 3, p5 4 -> exactly one violation, the p5 one):
- replay completeness: below `--min-success-rate` the diversity figures are unreliable, so only
  the completeness violation is reported and diversity is not published (see metrics_file.py);
- the absolute floor: the mean must be at least `--min-diversity` (the alarm's threshold);
- a stale catalog: more than 5% of lists holding articles it does not know;
- with a baseline: p5 must not fall below the baseline's p5 (the stable tail figure); the mean
  must not fall more than `mean_tolerance` below the baseline's; the most-concentrated slot
  must stay under the baseline's share + margin;
- the min is reported, never checked: it is one session's extreme and flaps.
Pure: a measurement and documents in, violations out.
"""

from __future__ import annotations

from collections.abc import Mapping

from diversity_monitor.conventions import LIVE_PREFIX, SUCCESS_RATE_METRIC, diversity_feature, slot_feature
from diversity_monitor.job.measure import Measurement
from diversity_monitor.job.model_monitor_files import Bounds, Violation, constraint_bounds
from diversity_monitor.measures.metrics import CollapseSummary, DiversitySummary

MAX_UNKNOWN_ARTICLE_SHARE = 0.05


def check(m: Measurement, *, min_diversity: float, min_success_rate: float,
          constraints: Mapping | None = None, constraints_source: str = "baseline constraints") -> list[Violation]:
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
        d = m.diversity
        if d.lists and d.lists_with_unknown_articles / d.lists > MAX_UNKNOWN_ARTICLE_SHARE:
            violations.append(Violation(
                diversity_feature(m.k), "completeness_check",
                f"{d.lists_with_unknown_articles} of {d.lists} lists hold articles missing from the catalog "
                f"({d.unknown_articles} articles): refresh the catalog",
            ))
        violations += _figure_checks(m.diversity, m.collapse, m.k, min_diversity, bounds, prefix="", who="")
    if m.live is not None and m.live.reliable:  # the same bounds for what real users got
        accumulator = m.live.stats.accumulator
        violations += _figure_checks(accumulator.diversity(), accumulator.collapse(), m.k, min_diversity, bounds,
                                     prefix=LIVE_PREFIX, who="live traffic: ")
    return violations


def _figure_checks(d: DiversitySummary, collapse: CollapseSummary, k: int, min_diversity: float,
                   bounds: Bounds | None, *, prefix: str, who: str) -> list[Violation]:
    """The floor and the baseline's bounds, on one set of lists (the replay's, or live traffic's)."""
    name = prefix + diversity_feature(k)
    violations = []
    if d.mean is not None and d.mean < min_diversity:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"{who}mean categories per top-{k} {d.mean:.2f} is below the floor {min_diversity:g} (--min-diversity)",
        ))
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
    share = collapse.max_slot_concentration
    if share is not None and share > bounds.slot_upper_bound:
        worst = max(collapse.slots, key=lambda s: s.top_article_share or 0)
        violations.append(Violation(
            prefix + slot_feature(k), "baseline_drift_check",
            f"{who}slot {worst.slot} shows article {worst.top_article_id} to {share:.0%} of sessions "
            f"(bound {bounds.slot_upper_bound:.0%}): recommendations are freezing",
        ))
    return violations
