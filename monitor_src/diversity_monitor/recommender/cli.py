"""`diversity-monitor recommender generate|import-mind|train|serve`.

`serve` is what the image runs: SageMaker starts inference containers as `docker run IMAGE
serve`, and the image's ENTRYPOINT is `diversity-monitor recommender`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diversity_monitor.aws import container_paths
from diversity_monitor.cli import whole_option

TRAINING_DATA_FORMAT = """\
DATA_DIR holds two CSV files with a header line (UTF-8):
  catalog.csv  article_id,category,title,published_at
               one row per article; published_at ISO-8601 UTC (2024-11-14T08:00:00Z); title may be empty
  clicks.csv   user_id,article_id,clicked_at
               one row per click, any order; every article_id must be in catalog.csv
`train` reads only these two. The monitor's replay and the demo also use, when present:
  validation_sessions.jsonl  {"session_id": "s00001", "request": {"user_id": "u00042",
                             "history": ["a0123", ...], "k": 10, "candidates": [...] (optional)}}
  users.jsonl                {"user_id": "u00042", "split": "train" | "validation"}
`recommender generate` writes a synthetic folder; `recommender import-mind` turns MIND's
news.tsv and behaviors.tsv into one.
"""


def _latency(text: str) -> float:
    from diversity_monitor.recommender.server import LatencyError, parse_latency_ms

    try:
        return parse_latency_ms(text, "--latency-ms")
    except LatencyError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(parser: argparse.ArgumentParser) -> None:
    from diversity_monitor.recommender.model import DEFECTS

    commands = parser.add_subparsers(dest="recommender_command", metavar="SUBCOMMAND", required=True)

    generate = commands.add_parser("generate", help="write a seeded dataset (catalog, click log, validation set)")
    generate.add_argument("out_dir", type=Path)
    generate.add_argument("--seed", type=whole_option("--seed", 0, 2**32 - 1), default=7)
    generate.add_argument("--articles", type=whole_option("--articles", 1, 10_000_000), default=3000, help="catalog size (default 3000)")
    generate.add_argument("--users", type=whole_option("--users", 1, 10_000_000), default=2000, help="users in the click log (default 2000)")
    generate.set_defaults(handler=_generate)

    mind = commands.add_parser(
        "import-mind", help="turn the MIND news dataset's news.tsv and behaviors.tsv into a training data folder",
        description="Turn MIND's news.tsv and behaviors.tsv (one split, e.g. MINDsmall_train/) into DATA_DIR for "
                    "`train`: catalog.csv, clicks.csv and a validation set of the last impressions, each replayed "
                    "as a request re-ranking that impression's candidates.")
    mind.add_argument("news", type=Path, help="MIND's news.tsv")
    mind.add_argument("behaviors", type=Path, help="MIND's behaviors.tsv")
    mind.add_argument("out_dir", type=Path, help="the training data folder to write")
    mind.add_argument("--validation-sessions", type=whole_option("--validation-sessions", 1, 10_000_000), default=500,
                      help="the last N impressions become the validation set, held out of training (default 500)")
    mind.set_defaults(handler=_import_mind)

    train = commands.add_parser(
        "train", help="train on a dataset and write OUT_DIR/model.tar.gz",
        description="Train the reference recommender on DATA_DIR and write OUT_DIR/model.tar.gz.",
        epilog=TRAINING_DATA_FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("data_dir", type=Path, help="the training data folder (format below)")
    train.add_argument("out_dir", type=Path)
    train.add_argument("--version", required=True, help="model version, carried in every response")
    train.add_argument(
        "--defect", choices=[name for name in DEFECTS if name], default=None,
        help="train a regressed version reproducing an incident (default: healthy)",
    )
    train.add_argument("--seed", type=whole_option("--seed", 0, 2**32 - 1), default=0, help="factor initialisation seed")
    train.set_defaults(handler=_train)

    serve = commands.add_parser("serve", help="serve a model directory (SageMaker inference contract)")
    serve.add_argument(
        "--model-dir", type=Path, default=None,
        help=f"extracted model (default {container_paths.MODEL_DIR}, under ${container_paths.ML_ROOT_ENV} if set)",
    )
    serve.add_argument("--port", type=whole_option("--port", 1, 65535), default=None, help="default $SAGEMAKER_BIND_TO_PORT, else 8080")
    serve.add_argument(
        "--host", default=None,
        help="bind address (default 0.0.0.0 inside a SageMaker container, 127.0.0.1 elsewhere)",
    )
    # SageMaker hands a model's `Environment` to its container, so latency can be set per model:
    # the variable is read (and checked) by `serve` only, never while building the parser.
    serve.add_argument("--latency-ms", type=_latency, default=None,
                       help="fixed latency added to each invocation (default: $RECOMMENDER_LATENCY_MS or 0)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)


def _fail(error: Exception) -> int:
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    return 1


def _generate(args: argparse.Namespace) -> int:
    from diversity_monitor.recommender import data

    try:
        paths = data.generate(args.out_dir, seed=args.seed, n_articles=args.articles, n_users=args.users)
    except (ValueError, OSError) as error:
        return _fail(error)
    print(paths.root)
    return 0


def _import_mind(args: argparse.Namespace) -> int:
    from diversity_monitor.recommender import data, mind

    try:
        paths = mind.import_mind(args.news, args.behaviors, args.out_dir, args.validation_sessions)
    except (data.DataError, OSError) as error:
        return _fail(error)
    print(paths.root)
    return 0


def _train(args: argparse.Namespace) -> int:
    from diversity_monitor.recommender import model

    try:
        archive = model.train(args.data_dir, args.out_dir, args.version, defect=args.defect, seed=args.seed)
    except (ValueError, OSError, model.ModelError) as error:
        return _fail(error)
    print(archive)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from diversity_monitor.recommender import model, server

    try:
        server.serve(args.model_dir, host=args.host, port=args.port, latency_ms=args.latency_ms, access_log=args.access_log)
    except (ValueError, model.ModelError) as error:
        return _fail(error)
    return 0
