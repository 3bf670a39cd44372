"""Seeded, deterministic news data: catalog, users, click logs and the monitoring job's inputs.

The world it simulates: articles over MIND's 17 top-level categories, each with a latent appeal
and a publication time; users whose clicks follow a few preferred categories; clicks that favour
appealing, fresh articles (popularity and recency effects); and in the last day two breaking
stories (one `news`, one `sports`) that many users click whatever their preferences. Those
trending stories are what a popularity-swamped model serves to everyone.

Files written (all text, all byte-identical for a seed):
- `catalog.csv`: `article_id,category,title,published_at` (what the monitor reads).
- `clicks.csv`: `user_id,article_id,clicked_at`, time-ordered: the training log.
- `validation_sessions.jsonl`: 500 held-out sessions `{"session_id", "request"}`, the request
  being exactly the body sent to the endpoint (`inputs.load_validation_set` reads it): the
  user's id and up to 10 distinct articles read before the session.
- `validation_heldout.jsonl`: what each validation user clicked in the held-out session (their
  clicks in the log's last day, kept out of `clicks.csv`), for offline checks.
- `users.jsonl`: each user's split and category preferences (the ground truth).
- `dataset.json`: the generator's parameters and counts.

The defaults are the calibrated world (the tests measure it): other sizes work, but the share of
breaking-story clicks and the size of the validation set were tuned at 3000 articles and 2000 users.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# MIND's top-level categories with the share of the catalog each gets (news and sports lead,
# as in MIND).
CATEGORY_SHARES: dict[str, float] = {
    "news": 0.18, "sports": 0.14, "finance": 0.07, "lifestyle": 0.07, "entertainment": 0.06,
    "health": 0.05, "foodanddrink": 0.05, "travel": 0.05, "autos": 0.04, "tv": 0.04,
    "movies": 0.04, "video": 0.04, "music": 0.03, "weather": 0.04, "northamerica": 0.04,
    "kids": 0.03, "middleeast": 0.03,
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_SHARES)
TRENDING_CATEGORIES = ("news", "sports")  # the two breaking stories of the last day
DEFAULT_END = np.datetime64("2024-11-15T00:00:00", "s")  # end of the click log
HISTORY_LENGTH = 10  # clicks sent as `history` in a request
SESSION_HOURS = 24  # a validation session = the user's clicks in the log's last day
MIN_HISTORY = 3  # a validation user has at least this many clicks before the session
BREAKING_HOURS = 16  # the breaking stories appear 16-24 hours before the end of the log

_TITLE_WORDS = (
    "city", "season", "record", "plan", "report", "market", "storm", "final", "review", "guide",
    "deal", "vote", "star", "trial", "launch", "festival", "league", "budget", "study", "recall",
)


@dataclass(frozen=True)
class DatasetPaths:
    root: Path
    catalog: Path
    clicks: Path
    validation_sessions: Path
    validation_heldout: Path
    users: Path
    manifest: Path

    @classmethod
    def under(cls, root: str | Path) -> DatasetPaths:
        root = Path(root)
        return cls(
            root=root,
            catalog=root / "catalog.csv",
            clicks=root / "clicks.csv",
            validation_sessions=root / "validation_sessions.jsonl",
            validation_heldout=root / "validation_heldout.jsonl",
            users=root / "users.jsonl",
            manifest=root / "dataset.json",
        )


@dataclass(frozen=True)
class Parameters:
    seed: int
    n_articles: int
    n_users: int
    n_validation: int
    days: int
    mean_clicks_per_user: float
    trending_articles_per_story: int
    trending_click_share: float  # share of last-day clicks that go to the breaking stories
    end: str


class DataError(ValueError):
    """A dataset folder that is missing files or holds malformed ones; the message names it."""


def generate(
    out_dir: str | Path,
    seed: int = 7,
    n_articles: int = 3000,
    n_users: int = 2000,
    n_validation: int = 500,
    days: int = 14,
    mean_clicks_per_user: float = 30.0,
    trending_articles_per_story: int = 8,
    trending_click_share: float = 0.6,
) -> DatasetPaths:
    """Write the dataset under `out_dir` and return its paths. Same seed, same bytes."""
    if n_articles < 10 * len(CATEGORIES):
        raise ValueError(f"n_articles must be at least {10 * len(CATEGORIES)}, got {n_articles}")
    # Validation users' last day is held out of the log; most users must stay in it, or the
    # last day's popularity signal (the breaking stories) thins out.
    if not 0 < n_validation <= n_users // 4:
        raise ValueError(f"n_validation must be in 1..n_users/4 ({n_users // 4}), got {n_validation}")
    params = Parameters(
        seed, n_articles, n_users, n_validation, days, mean_clicks_per_user,
        trending_articles_per_story, trending_click_share, f"{DEFAULT_END}Z",
    )
    # Independent streams per part, so changing one part's draws leaves the others alone.
    catalog_rng, users_rng, clicks_rng, split_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(4)
    )
    articles = _articles(catalog_rng, params)
    preferences = _preferences(users_rng, n_users)
    clicks = _clicks(clicks_rng, params, articles, preferences)
    validation_users = _validation_users(split_rng, clicks, n_users, n_validation)
    train_mask, sessions, heldout = _hold_out(clicks, validation_users)

    paths = DatasetPaths.under(out_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    _write_catalog(paths.catalog, articles)
    _write_clicks(paths.clicks, {key: value[train_mask] for key, value in clicks.items()})
    _write_jsonl(paths.validation_sessions, sessions)
    _write_jsonl(paths.validation_heldout, heldout)
    _write_jsonl(paths.users, _user_records(preferences, validation_users))
    counts = {"articles": n_articles, "users": n_users, "training_clicks": int(train_mask.sum()),
              "validation_sessions": len(sessions)}
    paths.manifest.write_text(json.dumps({"parameters": asdict(params), "counts": counts}, indent=2) + "\n")
    return paths


# --- the simulated world ------------------------------------------------------------------

def _articles(rng: np.random.Generator, params: Parameters) -> dict[str, np.ndarray]:
    n, window_h = params.n_articles, params.days * 24
    shares = np.array(list(CATEGORY_SHARES.values()))
    category = rng.choice(len(CATEGORIES), size=n, p=shares / shares.sum())
    category[: len(CATEGORIES)] = np.arange(len(CATEGORIES))  # every category has articles
    # Hours before the end of the log; three days of back catalog so the first clicks have choice.
    age_h = rng.uniform(0, window_h + 72, size=n)
    age_h[: len(CATEGORIES)] = window_h + 72  # ... and an article available from the start
    appeal = rng.lognormal(0.0, 0.8, size=n)
    trending = np.zeros(n, dtype=bool)
    start = len(CATEGORIES)
    for name in TRENDING_CATEGORIES:
        story = np.arange(start, start + params.trending_articles_per_story)
        category[story] = CATEGORIES.index(name)
        age_h[story] = rng.uniform(BREAKING_HOURS, BREAKING_HOURS + 8, size=story.size)
        appeal[story] = rng.uniform(1.0, 2.0, size=story.size)  # every piece of a big story draws readers
        trending[story] = True
        start += story.size
    title_words = rng.choice(len(_TITLE_WORDS), size=(n, 3))
    return {"category": category, "age_h": age_h, "appeal": appeal, "trending": trending,
            "title_words": title_words}


def _preferences(rng: np.random.Generator, n_users: int) -> np.ndarray:
    """Per-user category distribution: a few favourites over a weak pull towards big categories."""
    shares = np.array(list(CATEGORY_SHARES.values()))
    favourites = rng.dirichlet(np.full(len(CATEGORIES), 0.25), size=n_users)
    return 0.85 * favourites + 0.15 * shares / shares.sum()


def _clicks(
    rng: np.random.Generator, params: Parameters, articles: dict[str, np.ndarray], preferences: np.ndarray
) -> dict[str, np.ndarray]:
    n_users, window_h = preferences.shape[0], params.days * 24
    activity = rng.lognormal(np.log(params.mean_clicks_per_user) - 0.125, 0.5, size=n_users)
    per_user = np.maximum(5, np.rint(activity)).astype(int)
    user = np.repeat(np.arange(n_users), per_user)
    total = user.size
    age_h = rng.uniform(0, window_h, size=total)  # hours before the end of the log
    hour = np.floor(age_h).astype(int)  # articles must be older than the hour the click falls in
    cumulative = np.cumsum(preferences, axis=1)
    category = np.minimum((rng.random(total)[:, None] > cumulative[user]).sum(axis=1), len(CATEGORIES) - 1)
    to_trending = (age_h < BREAKING_HOURS) & (rng.random(total) < params.trending_click_share)

    article = np.empty(total, dtype=np.int64)
    # Sample per (hour, category) bucket: weights = appeal x recency among published articles.
    bucket = np.where(to_trending, -1, category)
    order = np.lexsort((bucket, hour))
    keys = np.stack([hour[order], bucket[order]], axis=1)
    boundaries = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    for group in np.split(order, boundaries):
        h, b = hour[group[0]], bucket[group[0]]
        pool = articles["trending"] if b == -1 else articles["category"] == b
        pool = np.flatnonzero(pool & (articles["age_h"] > h + 1))
        hours_old = articles["age_h"][pool] - h
        weights = articles["appeal"][pool] * np.exp(-hours_old / 36.0)
        article[group] = rng.choice(pool, size=group.size, p=weights / weights.sum())
    # Time order (oldest first), ties broken by user then article so the order is total.
    order = np.lexsort((article, user, -age_h))
    return {"user": user[order], "article": article[order], "age_h": age_h[order]}


def _validation_users(
    rng: np.random.Generator, clicks: dict[str, np.ndarray], n_users: int, n_validation: int
) -> np.ndarray:
    """Users with a session in the last day and enough clicks before it to send a history."""
    in_session = clicks["age_h"] < SESSION_HOURS
    with_session = np.bincount(clicks["user"][in_session], minlength=n_users) > 0
    before = np.bincount(clicks["user"][~in_session], minlength=n_users) >= MIN_HISTORY
    eligible = np.flatnonzero(with_session & before)
    if eligible.size < n_validation:
        raise ValueError(
            f"only {eligible.size} users have a session in the last {SESSION_HOURS} h and "
            f"{MIN_HISTORY}+ clicks before it; n_validation={n_validation} is too many"
        )
    return np.sort(rng.choice(eligible, size=n_validation, replace=False))


def _hold_out(
    clicks: dict[str, np.ndarray], validation_users: np.ndarray
) -> tuple[np.ndarray, list[dict], list[dict]]:
    """Hold out each validation user's last-day session; the request carries the clicks before it.

    The session is everything the user clicked in the last day, so no click on the day's
    breaking stories leaks into the history or the training log for these users.
    """
    in_session = clicks["age_h"] < SESSION_HOURS
    train_mask = ~(np.isin(clicks["user"], validation_users) & in_session)
    sessions, heldout = [], []
    for number, user in enumerate(validation_users):
        rows = np.flatnonzero(clicks["user"] == user)  # already time-ordered
        held, before = rows[in_session[rows]], rows[~in_session[rows]]
        session_id = f"s{number:05d}"
        sessions.append({"session_id": session_id, "request": {
            "user_id": user_id(user), "history": _recent_unique(clicks["article"][before]), "k": 10}})
        heldout.append({"session_id": session_id, "clicked": [article_id(a) for a in clicks["article"][held]]})
    return train_mask, sessions, heldout


def _recent_unique(articles: np.ndarray, length: int = HISTORY_LENGTH) -> list[str]:
    """The last `length` distinct articles, oldest first (how a history is sent)."""
    seen: list[int] = []
    for article in articles[::-1]:
        if article not in seen:
            seen.append(int(article))
        if len(seen) == length:
            break
    return [article_id(a) for a in reversed(seen)]


def user_id(index: int) -> str:
    return f"u{int(index):05d}"


def article_id(index: int) -> str:
    return f"a{int(index):04d}"


# --- writing ------------------------------------------------------------------------------

def _timestamps(age_h: np.ndarray) -> np.ndarray:
    instants = DEFAULT_END - np.rint(age_h * 3600).astype("timedelta64[s]")
    return np.char.add(np.datetime_as_string(instants, unit="s"), "Z")


def _write_catalog(path: Path, articles: dict[str, np.ndarray]) -> None:
    published = _timestamps(articles["age_h"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["article_id", "category", "title", "published_at"])
    for index, (category, words) in enumerate(zip(articles["category"], articles["title_words"])):
        title = " ".join(_TITLE_WORDS[w] for w in words).capitalize()
        writer.writerow([article_id(index), CATEGORIES[category], f"{title}, {CATEGORIES[category]}", published[index]])
    path.write_text(buffer.getvalue())


def _write_clicks(path: Path, clicks: dict[str, np.ndarray]) -> None:
    stamps = _timestamps(clicks["age_h"])
    lines = ["user_id,article_id,clicked_at"]
    lines += [f"{user_id(u)},{article_id(a)},{t}" for u, a, t in zip(clicks["user"], clicks["article"], stamps)]
    path.write_text("\n".join(lines) + "\n")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))


def _user_records(preferences: np.ndarray, validation_users: np.ndarray) -> list[dict]:
    validation = set(validation_users.tolist())
    return [
        {"user_id": user_id(u), "split": "validation" if u in validation else "train",
         "preferences": {c: round(float(p), 4) for c, p in zip(CATEGORIES, row)}}
        for u, row in enumerate(preferences)
    ]


# --- reading ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    """What live traffic is drawn from: the training log's users and their recent clicks."""

    paths: DatasetPaths
    histories: dict[str, list[str]]  # user id -> recent distinct clicks, oldest first
    validation_users: frozenset[str]
    articles: tuple[str, ...]
    n_users: int


def load(data_dir: str | Path) -> Dataset:
    paths = DatasetPaths.under(data_dir)
    clicks_by_user: dict[str, list[str]] = {}
    for row in read_csv(paths.clicks, ("user_id", "article_id", "clicked_at")):
        clicks_by_user.setdefault(row["user_id"], []).append(row["article_id"])
    users = [json.loads(line) for line in _read_text(paths.users).splitlines() if line.strip()]
    articles = tuple(row["article_id"] for row in read_csv(paths.catalog, ("article_id", "category")))
    histories = {user: _recent_unique_ids(ids) for user, ids in clicks_by_user.items()}
    validation = frozenset(u["user_id"] for u in users if u.get("split") == "validation")
    return Dataset(paths, histories, validation, articles, len(users))


def _recent_unique_ids(ids: list[str], length: int = HISTORY_LENGTH) -> list[str]:
    recent = list(dict.fromkeys(reversed(ids)))[:length]
    return recent[::-1]


def live_requests(source: str | Path | Dataset, n: int, seed: int = 0, cold_share: float = 0.1) -> list[dict]:
    """`n` request bodies from users outside the validation set; a `cold_share` are new users.

    Known users send their recent clicks as history; new users (ids past the dataset's users)
    send an empty or short history, so live traffic exercises the cold-start path too.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= cold_share <= 1:
        raise ValueError(f"cold_share must be in [0, 1], got {cold_share}")
    dataset = source if isinstance(source, Dataset) else load(source)
    pool = sorted(u for u in dataset.histories if u not in dataset.validation_users)
    if not pool:
        raise DataError(f"dataset {dataset.paths.root}: no training users outside the validation set")
    rng = np.random.default_rng(seed)
    cold = rng.random(n) < cold_share
    picks = rng.choice(len(pool), size=n, replace=n > len(pool))
    requests = []
    for number, (is_cold, pick) in enumerate(zip(cold, picks)):
        if is_cold:
            history = [dataset.articles[i] for i in rng.choice(len(dataset.articles), size=rng.integers(0, 4))]
            requests.append({"user_id": user_id(dataset.n_users + number), "history": history, "k": 10})
        else:
            user = pool[pick]
            requests.append({"user_id": user, "history": list(dataset.histories[user]), "k": 10})
    return requests


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise DataError(f"dataset file {path}: cannot be read ({error.strerror})") from error


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a dataset CSV; a missing column or a short row is a DataError naming the file."""
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    missing = set(required) - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"dataset file {path}: header lacks {sorted(missing)}")
    rows = []
    for row in reader:
        if any(not row.get(column) for column in required) or None in row:
            raise DataError(f"dataset file {path} line {reader.line_num}: malformed row {row!r}")
        rows.append(row)
    return rows
