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

from diversity_monitor.conventions import SUCCESS_RATE_METRIC, diversity_feature, slot_feature
from diversity_monitor.job.measure import Measurement
from diversity_monitor.job.model_monitor_files import Violation, constraint_bounds

MAX_UNKNOWN_ARTICLE_SHARE = 0.05


def check(m: Measurement, *, min_diversity: float, min_success_rate: float,
          constraints: Mapping | None = None, constraints_source: str = "baseline constraints") -> list[Violation]:
    """Every violation of this measurement, in a stable order."""
    bounds = constraint_bounds(constraints, m.k, constraints_source) if constraints is not None else None
    violations: list[Violation] = []
    name = diversity_feature(m.k)
    if m.success_rate < min_success_rate:
        violations.append(Violation(
            SUCCESS_RATE_METRIC, "completeness_check",
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
    if bounds is None:
        return violations
    if d.p5 is not None and d.p5 < bounds.p5_lower_bound:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"p5 categories per top-{m.k} {d.p5} is below the baseline p5 {bounds.p5_lower_bound:g}",
        ))
    if d.mean is not None and d.mean < bounds.mean_lower_bound:
        violations.append(Violation(
            name, "baseline_drift_check",
            f"mean categories per top-{m.k} {d.mean:.2f} is below the baseline bound {bounds.mean_lower_bound:g}",
        ))
    share = m.collapse.max_slot_concentration
    if share is not None and share > bounds.slot_upper_bound:
        worst = max(m.collapse.slots, key=lambda s: s.top_article_share or 0)
        violations.append(Violation(
            slot_feature(m.k), "baseline_drift_check",
            f"slot {worst.slot} shows article {worst.top_article_id} to {share:.0%} of sessions "
            f"(bound {bounds.slot_upper_bound:.0%}): recommendations are freezing",
        ))
    return violations
