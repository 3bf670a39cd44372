"""`diversity-monitor capture-stats`: what live traffic got, read from data capture (S3 or a folder).

Prints a JSON summary: records read, malformed lines with their locations, replay records
excluded, live-traffic diversity and slot collapse. The reading is `capture.reader`'s.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import orjson

from diversity_monitor import clock
from diversity_monitor.capture.reader import DEFAULT_LOCATION_LIMIT, live_diversity
from diversity_monitor.capture.source import CaptureSourceError
from diversity_monitor.cli import deprecated_alias, whole_option
from diversity_monitor.conventions import DEFAULT_TOP_K, MAX_TOP_K, REPLAY_INFERENCE_PREFIX
from diversity_monitor.job.inputs import InputError, load_catalog
from diversity_monitor.measures.response_path import DEFAULT_RESPONSE_PATH

EXIT_SOURCE_ERROR, EXIT_CATALOG_ERROR = 3, 4
MAX_WORKERS = 256  # reading processes
MAX_LOCATIONS = 1_000_000  # malformed locations listed (each is a line of output)


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read captured traffic (an S3 prefix or a local folder) and print a JSON summary: records read, "
        "malformed lines with their locations, replay records excluded, live-traffic diversity and slot collapse."
    )
    parser.add_argument("source", metavar="SOURCE",
                        help="s3://bucket/prefix or a local folder: the DestinationS3Uri, an endpoint or variant "
                             "folder, or a year, month, day or hour folder inside a variant")
    parser.add_argument("--catalog", required=True, metavar="URI", help="article catalog (CSV or JSON Lines: article_id, category)")
    parser.add_argument("--start", type=_instant, metavar="T", help="ISO-8601 start of the window (inclusive)")
    parser.add_argument("--end", type=_instant, metavar="T", help="ISO-8601 end of the window (exclusive)")
    parser.add_argument("--exclude-inference-prefix", default=REPLAY_INFERENCE_PREFIX, metavar="P",
                        help=f"InferenceId prefix of replay traffic to exclude (default {REPLAY_INFERENCE_PREFIX!r}; '' excludes nothing)")
    parser.add_argument("--top-k", type=whole_option("--top-k", 1, MAX_TOP_K), default=DEFAULT_TOP_K, metavar="K",
                        help=f"top-k size (default {DEFAULT_TOP_K})")
    deprecated_alias(parser, "--k", "--top-k")
    parser.add_argument("--response-path", default=DEFAULT_RESPONSE_PATH, metavar="EXPR",
                        help=f"where the ranked article ids are in a response (default {DEFAULT_RESPONSE_PATH!r})")
    parser.add_argument("--workers", type=whole_option("--workers", 1, MAX_WORKERS), default=1, help="processes reading files in parallel (default 1)")
    parser.add_argument("--max-locations", type=whole_option("--max-locations", 0, MAX_LOCATIONS), default=DEFAULT_LOCATION_LIMIT, metavar="N",
                        help="malformed locations to list (the count is always exact)")
    parser.set_defaults(handler=_capture_stats)


def _instant(text: str) -> datetime:
    try:
        return clock.parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 instant (e.g. 2024-05-01T10:00:00Z)") from None


def _capture_stats(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args.catalog)
    except InputError as error:
        return _fail("CatalogError", str(error), EXIT_CATALOG_ERROR)
    try:
        stats = live_diversity(
            args.source, catalog, k=args.top_k, start=args.start, end=args.end,
            exclude_inference_prefix=args.exclude_inference_prefix, response_path=args.response_path,
            workers=args.workers, location_limit=args.max_locations,
        )
    except CaptureSourceError as error:
        return _fail("CaptureSourceError", str(error), EXIT_SOURCE_ERROR)
    except ValueError as error:
        return _fail("UsageError", str(error), 2)
    if stats.files_read == 0:
        print(f"capture-stats: warning: no capture files under {args.source} for the window", file=sys.stderr)
    sys.stdout.write(orjson.dumps(stats.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _fail(name: str, message: str, status: int) -> int:
    print(f"capture-stats: {name}: {message}", file=sys.stderr)
    return status
