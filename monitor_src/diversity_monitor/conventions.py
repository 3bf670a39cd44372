"""Every name and default the kit shares, owned here and imported everywhere else.

If two places must agree for the monitor to work (the job names a metric, an alarm watches it;
the replay tags its traffic, the capture reader leaves it out; a run writes a file, the on-call
reads it back), the value lives here, and both places import it. Pure: no I/O, no AWS calls.
"""

from __future__ import annotations

from datetime import datetime, timezone

# --- what the monitor measures ----------------------------------------------------------------
DEFAULT_TOP_K = 10  # list length that counts (`--top-k`)
MAX_TOP_K = 1000  # the longest top list any command measures (a histogram has k + 1 slots)
DEFAULT_MIN_DIVERSITY = 4.0  # the floor: mean categories per top-k (`--min-diversity`, the alarm's threshold)
DEFAULT_MIN_SUCCESS_RATE = 0.95  # replayed share below which diversity is not published (`--min-success-rate`)
# Baselines (`baseline --mean-tolerance / --slot-margin`, notebook 02) and the deploy gate (`baseline-gate`).
DEFAULT_MEAN_TOLERANCE = 1.0  # how far below the baseline mean (categories) an hourly run may fall
DEFAULT_SLOT_MARGIN = 0.3  # how far above the baseline's most-concentrated slot share a run may go
DEFAULT_MAX_MEAN_DROP = 1.0  # how far below the previous version's baseline mean a candidate may be
# Cross-session collapse: absolute bounds that hold with or without a baseline (`--max-list-overlap`,
# `--max-top-list-share`, `--max-slot-share`); a baseline's bounds are capped by them, so no baseline can
# switch a check off. Chosen from the reference recommender's healthy model (seed-7 data, 500 sessions:
# overlap 0.23, top-list share 0.002, slot share 0.14; notes/issue-12.md has the table) with room for a
# healthy model that is twice as concentrated, and well below every defect measured there.
DEFAULT_MAX_LIST_OVERLAP = 0.5  # mean over session pairs of |A n B| / k
DEFAULT_MAX_TOP_LIST_SHARE = 0.2  # share of sessions served the single most common list
DEFAULT_MAX_SLOT_SHARE = 0.6  # share of lists showing a slot's most common article (supported slots only)
DEFAULT_OVERLAP_MARGIN = 0.15  # baseline: how far above the baseline's overlap a run may go
DEFAULT_TOP_LIST_MARGIN = 0.1  # baseline: how far above the baseline's top-list share a run may go
# A slot counts for the freeze only when at least this share of the lists fill it: a slot filled in
# one list of 500 is "frozen at 100%" by construction and says nothing.
MIN_SLOT_SUPPORT = 0.5
# Blind is not broken: above these shares the run cannot vouch for its diversity figures, withholds
# them and reports why; the monitor-health alarms page. 5%: a catalog refreshed daily misses well under
# 1% of what a healthy model serves, and a healthy model always fills its k slots.
MAX_UNKNOWN_ARTICLE_SHARE = 0.05  # served articles the catalog does not know
MAX_SHORT_LIST_SHARE = 0.05  # lists with fewer than k articles (empty ones included)

# --- replay traffic ---------------------------------------------------------------------------
# InvokeEndpoint InferenceId prefix of every call the monitor makes: analyses of captured data
# leave it out, so the monitor's own traffic is never counted as live traffic.
REPLAY_INFERENCE_PREFIX = "diversity-replay-"

# --- how much of an input the kit reads --------------------------------------------------------
# Every input is read up to its cap and refused past it with an error naming it (a wrong S3 key on
# a huge object must fail by name, not grow the process until the kernel kills it). Generous: about
# 100 times the reference sizes (500 sessions are ~100 KB; 3000 articles ~100 KB; a baseline ~10 KB).
MiB = 1024 * 1024
MAX_VALIDATION_SET_BYTES = 256 * MiB
MAX_CATALOG_BYTES = 256 * MiB
MAX_JSON_DOCUMENT_BYTES = 16 * MiB  # statistics.json, constraints.json, a past report's files
# One data-capture line holds a request and a response (each at most InvokeEndpoint's 6 MiB,
# base64 adds a third) plus its envelope: a longer line is not a capture record.
MAX_CAPTURE_LINE_BYTES = 32 * MiB

# --- Model Monitor files and the run's report folder ------------------------------------------
CUSTOM_BLOCK = "diversity_monitor"  # our figures inside statistics.json (the platform allows extra keys)
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"  # no "s" after constraint: the SDK's spelling
EXECUTED_NOTEBOOK = "report.ipynb"
EXECUTED_HTML = "report.html"
PARAMETERS_FILE = "parameters.json"
# Every file a run writes to its report folder: none may be there before it starts.
RUN_OUTPUT_FILES = (STATISTICS_FILE, VIOLATIONS_FILE, EXECUTED_NOTEBOOK, EXECUTED_HTML, PARAMETERS_FILE)
REPORT_NOTEBOOK = "diversity_report.ipynb"  # the notebook papermill executes in every run
GATE_FILE = "gate.json"  # the deploy gate's verdict, next to a baseline
INCIDENTS_FOLDER = "incidents"  # incident summaries, next to the schedule's hour folders


def hour_path(hour: datetime) -> str:
    """`yyyy/mm/dd/HH` of an hour in UTC: capture objects and report folders both use it."""
    if hour.tzinfo is None:
        hour = hour.replace(tzinfo=timezone.utc)
    return hour.astimezone(timezone.utc).strftime("%Y/%m/%d/%H")


def schedule_reports_prefix(reports_uri: str, endpoint: str, schedule: str) -> str:
    """Model Monitor's layout: `<S3Output.S3Uri>/<endpoint>/<schedule>` holds one folder per hour."""
    return "/".join((reports_uri.rstrip("/"), endpoint, schedule))


def report_hour_prefix(reports_uri: str, endpoint: str, schedule: str, hour: datetime) -> str:
    """The folder of the run scheduled at `hour` (the 22:00-23:00 window lands in /23)."""
    return f"{schedule_reports_prefix(reports_uri, endpoint, schedule)}/{hour_path(hour)}"


def reports_uri_of(job_definition: dict) -> str:
    """The reports location a monitoring job definition names (its first S3Output)."""
    return job_definition["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"]


def endpoint_of(job_definition: dict) -> str:
    return job_definition["MonitoringInputs"][0]["EndpointInput"]["EndpointName"]


# --- CloudWatch -------------------------------------------------------------------------------
# AWS's own sample code reads custom-container metrics back from this namespace with these
# dimensions (platform-facts.md explains why we follow the samples, not the doc pages).
METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
ENDPOINT_DIMENSION = "Endpoint"
SCHEDULE_DIMENSION = "MonitoringSchedule"
METRIC_PERIOD_SECONDS = 3600  # one point per hourly run
# Scheduled runs may start 0-20 minutes late (platform-facts.md): a report that does not say when it
# measured is taken as published this long after its hour (the alarm backtest's default).
SCHEDULE_START_DELAY_MINUTES = 20
SUCCESS_RATE_METRIC = "replay_success_rate"
SESSIONS_SUCCEEDED_METRIC = "replay_sessions_succeeded"
UNKNOWN_ARTICLE_SHARE_METRIC = "unknown_article_share"  # served articles missing from the catalog
SHORT_LIST_SHARE_METRIC = "short_list_share"  # lists shorter than k


def diversity_feature(k: int) -> str:
    """The statistics.json feature (and metric stem) of categories per top-k list."""
    return f"top{k}_category_diversity"


def diversity_metric(k: int, statistic: str = "mean") -> str:
    """`top{k}_category_diversity_{mean|min|p5}`: the job publishes it, the alarm watches the mean."""
    return f"{diversity_feature(k)}_{statistic}"


# Live traffic (the hour's captured requests, replay excluded): the same measures, prefixed.
LIVE_PREFIX = "live_"
LIVE_LISTS_METRIC = "live_lists"  # how many live top lists the hour's capture held
# Below this many live lists a run neither publishes nor judges live figures: with a per-list
# spread of about one category, 100 lists put the mean within +-0.2 (two standard errors) and give
# the p5 five lists to stand on; fewer would page on noise.
MIN_LIVE_LISTS = 100


def live_metric(name: str) -> str:
    """`live_top10_category_diversity_mean` from `top10_category_diversity_mean`."""
    return f"{LIVE_PREFIX}{name}"


def slot_feature(k: int) -> str:
    return f"top{k}_max_slot_concentration"


def distinct_articles_feature(k: int) -> str:
    return f"top{k}_distinct_articles"


def list_overlap_feature(k: int) -> str:
    """Mean over session pairs of |A n B| / k: how much everyone's top-k lists are the same."""
    return f"top{k}_list_overlap"


def top_list_share_feature(k: int) -> str:
    """Share of sessions that got the single most common top-k list."""
    return f"top{k}_top_list_share"


DIVERSITY_STATISTICS = ("mean", "p5", "min")  # the figures of categories per top-k a run publishes


def published_metrics(k: int) -> dict[str, tuple[str, ...]]:
    """Every metric a run publishes for top-`k`, grouped by what it tells (the job writes each one,
    the dashboard draws one graph per group or leaves it out on purpose)."""
    return {
        "diversity": tuple(diversity_metric(k, statistic) for statistic in DIVERSITY_STATISTICS),
        # is everyone getting the same thing: the slot freeze, the list overlap, the top-list share
        "sameness": (slot_feature(k), list_overlap_feature(k), top_list_share_feature(k)),
        "distinct_articles": (distinct_articles_feature(k),),
        "replay_success": (SUCCESS_RATE_METRIC,),
        "blindness": (UNKNOWN_ARTICLE_SHARE_METRIC, SHORT_LIST_SHARE_METRIC),
        "replay_sessions": (SESSIONS_SUCCEEDED_METRIC,),
        "live_diversity": (live_metric(diversity_metric(k, "mean")), live_metric(diversity_metric(k, "p5"))),
        "live_lists": (LIVE_LISTS_METRIC,),
        "live_collapse": tuple(live_metric(name) for name in (
            diversity_metric(k, "min"), slot_feature(k), distinct_articles_feature(k))),
    }


def metric_dimensions(endpoint: str, schedule: str) -> list[dict]:
    """The dimensions of every metric a run publishes, and so of every alarm on them."""
    return [{"Name": ENDPOINT_DIMENSION, "Value": endpoint}, {"Name": SCHEDULE_DIMENSION, "Value": schedule}]


def dashboard_name(endpoint: str) -> str:
    """The endpoint's CloudWatch dashboard (notebook 03 creates it, the alarm runbook draws it)."""
    return f"{endpoint}-diversity"


# --- the no-data loop -------------------------------------------------------------------------
# An hour without captured data fails before any container starts ("Job inputs had no data"),
# so no replay runs, so the next hour holds no replay traffic either: a quiet endpoint would stay
# unmonitored by itself (platform-facts.md). The kit's schedules analyse this many hours beyond
# their period (DataAnalysisStartTime), so any run's replay traffic in that span keeps the next
# run alive; the live-traffic pass still judges one period (`--live-window`).
ANALYSIS_WINDOW_EXTRA_HOURS = 2

# --- what the platform says -------------------------------------------------------------------
# An execution's FailureReason when the window has no captured data: no container starts.
NO_CAPTURE_FAILURE = "Job inputs had no data"
# A Stopped execution: past MaxRuntimeInSeconds or stopped by hand. AWS's words for the status (Model
# Monitor introduction notebook, sm-model_monitor_introduction: "Stopped - The job exceeded max runtime
# or was manually stopped"); the local stand-in gives them as the execution's FailureReason.
STOPPED_EXECUTION_REASON = "The job exceeded max runtime or was manually stopped"
# How a container's /opt/ml/output/message starts when it found violations (and the status it gets).
COMPLETED_WITH_VIOLATIONS = "CompletedWithViolations"


# --- where the on-call is pointed -------------------------------------------------------------
RUNBOOKS_README = "runbooks/README.md"  # the alarms and every report link here
DIVERSITY_ALARM_RUNBOOK = "runbooks/diversity_alarm.ipynb"
FAILED_RUN_RUNBOOK = "runbooks/monitor_job_failed.ipynb"

# --- the embedded local stack -----------------------------------------------------------------
# Its own credentials, in its state folder, owner-only: the stack (local/) writes them at its
# first start; the kit's sessions (aws/session) find them there to sign requests to it.
LOCAL_STACK_CREDENTIALS_FILE = "credentials.json"
