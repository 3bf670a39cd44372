"""Import the MIND news dataset (`news.tsv`, `behaviors.tsv`) as a training data folder.

MIND (Microsoft News Dataset, https://msnews.github.io/) ships each split as two tab-separated
files without a header:

- `news.tsv`: `NewsID  Category  SubCategory  Title  Abstract  URL  TitleEntities  AbstractEntities`
- `behaviors.tsv`: `ImpressionID  UserID  Time  History  Impressions`, Time as
  `11/15/2019 8:55:22 AM` (UTC), History the user's earlier clicks (space-separated news ids,
  oldest first), Impressions the shown candidates with their label (`N12345-1` clicked, `-0` not).

`import_mind` writes the folder `train` reads and the monitor replays (`data.DatasetPaths`):

- `catalog.csv` (`article_id,category,title,published_at`): every news id, its top-level
  category and title. MIND has no publication time: an article's first impression stands in for
  it (articles only ever seen in histories get the first impression time of the whole file).
- `clicks.csv` (`user_id,article_id,clicked_at`): the clicked candidates of every training
  impression at the impression's time, and each user's History clicks, which MIND does not
  date, at one second before that user's first impression.
- `validation_sessions.jsonl`: the last `validation_sessions` impressions (by time) as replay
  sessions `{"session_id": <ImpressionID>, "request": {"user_id", "history": <last 10 of
  History>, "k": 10, "candidates": [<the impression's news ids>]}}`: the monitor then measures
  how the model re-ranks each impression's candidates. Their clicks are held out of `clicks.csv`
  and written to `validation_heldout.jsonl` (`{"session_id", "clicked"}`).
- `users.jsonl` (`{"user_id", "split"}`) and `dataset.json` (source, counts).

Every malformed line is a `DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from diversity_monitor.recommender.data import HISTORY_LENGTH, DataError, DatasetPaths

NEWS_COLUMNS = 8
BEHAVIOR_COLUMNS = 5
MIND_TIME = "%m/%d/%Y %I:%M:%S %p"


@dataclass(frozen=True)
class Impression:
    impression_id: str
    user_id: str
    at: datetime
    history: list[str]
    shown: list[tuple[str, bool]]  # (news id, clicked)


def _lines(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"MIND file {path}: cannot be read ({error.strerror})") from error
    return [line.split("\t") for line in text.splitlines() if line.strip()]


def read_news(path: Path) -> dict[str, dict[str, str]]:
    """news id -> {category, title}."""
    news = {}
    for number, fields in enumerate(_lines(path), start=1):
        if len(fields) != NEWS_COLUMNS or not fields[0] or not fields[1]:
            raise DataError(f"MIND file {path} line {number}: expected {NEWS_COLUMNS} tab-separated fields "
                            f"(NewsID, Category, SubCategory, Title, Abstract, URL, TitleEntities, AbstractEntities), "
                            f"got {len(fields)}")
        news[fields[0]] = {"category": fields[1], "title": fields[3]}
    return news


def read_behaviors(path: Path, news: dict[str, dict[str, str]]) -> list[Impression]:
    impressions = []
    for number, fields in enumerate(_lines(path), start=1):
        where = f"MIND file {path} line {number}"
        if len(fields) != BEHAVIOR_COLUMNS:
            raise DataError(f"{where}: expected {BEHAVIOR_COLUMNS} tab-separated fields "
                            f"(ImpressionID, UserID, Time, History, Impressions), got {len(fields)}")
        impression_id, user, time_text, history_text, shown_text = fields
        try:
            at = datetime.strptime(time_text.strip(), MIND_TIME).replace(tzinfo=timezone.utc)
        except ValueError:
            raise DataError(f"{where}: Time {time_text!r} is not like '11/15/2019 8:55:22 AM'") from None
        shown = []
        for item in shown_text.split():
            article, _, label = item.rpartition("-")
            if not article or label not in ("0", "1"):
                raise DataError(f"{where}: impression item {item!r} is not <NewsID>-<0|1>")
            shown.append((article, label == "1"))
        history = history_text.split()
        unknown = sorted(({*history} | {article for article, _ in shown}) - news.keys())
        if unknown:
            raise DataError(f"{where}: news ids not in news.tsv: {unknown[:3]}")
        if not shown:
            raise DataError(f"{where}: no impression items")
        impressions.append(Impression(impression_id, user, at, history, shown))
    return impressions


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def import_mind(news_path: Path, behaviors_path: Path, out_dir: Path, validation_sessions: int = 500) -> DatasetPaths:
    """Write `out_dir` in the training data format from MIND's two files (module docstring)."""
    news = read_news(Path(news_path))
    impressions = sorted(read_behaviors(Path(behaviors_path), news), key=lambda i: (i.at, i.impression_id))
    if not impressions:
        raise DataError(f"MIND file {behaviors_path}: no impressions")
    if not 0 < validation_sessions < len(impressions):
        raise DataError(f"validation_sessions={validation_sessions}: must be between 1 and the number of "
                        f"impressions less one ({len(impressions) - 1}), so some are left to train on")
    held = impressions[-validation_sessions:]
    train = impressions[:-validation_sessions]
    start = impressions[0].at
    first_seen: dict[str, datetime] = {}
    for impression in impressions:
        for article, _ in impression.shown:
            first_seen.setdefault(article, impression.at)

    paths = DatasetPaths.under(out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    catalog = io.StringIO()
    writer = csv.writer(catalog, lineterminator="\n")
    writer.writerow(["article_id", "category", "title", "published_at"])
    for article, item in news.items():
        writer.writerow([article, item["category"], item["title"], _stamp(first_seen.get(article, start))])
    paths.catalog.write_text(catalog.getvalue())

    first_impression: dict[str, datetime] = {}
    history_of: dict[str, list[str]] = {}
    for impression in impressions:
        first_impression.setdefault(impression.user_id, impression.at)
        history_of.setdefault(impression.user_id, impression.history)
    clicks = []
    for user, history in history_of.items():
        undated = _stamp(first_impression[user] - timedelta(seconds=1))
        clicks += [(undated, user, article) for article in history]
    for impression in train:
        clicks += [(_stamp(impression.at), impression.user_id, article) for article, clicked in impression.shown if clicked]
    clicks.sort()
    paths.clicks.write_text("user_id,article_id,clicked_at\n"
                            + "".join(f"{user},{article},{at}\n" for at, user, article in clicks))

    sessions = [{"session_id": i.impression_id, "request": {
        "user_id": i.user_id, "history": i.history[-HISTORY_LENGTH:], "k": 10,
        "candidates": [article for article, _ in i.shown]}} for i in held]
    heldout = [{"session_id": i.impression_id, "clicked": [article for article, clicked in i.shown if clicked]} for i in held]
    paths.validation_sessions.write_text("".join(json.dumps(s, separators=(",", ":")) + "\n" for s in sessions))
    paths.validation_heldout.write_text("".join(json.dumps(h, separators=(",", ":")) + "\n" for h in heldout))
    validation_users = {i.user_id for i in held}
    paths.users.write_text("".join(json.dumps({"user_id": user, "split": "validation" if user in validation_users else "train"})
                                   + "\n" for user in sorted(history_of)))
    paths.manifest.write_text(json.dumps({
        "source": "MIND", "news": str(news_path), "behaviors": str(behaviors_path), "articles": len(news),
        "users": len(history_of), "impressions": len(impressions), "training_clicks": len(clicks),
        "validation_sessions": len(sessions),
    }, indent=2) + "\n")
    return paths
