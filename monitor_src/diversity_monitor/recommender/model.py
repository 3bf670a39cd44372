"""Train, package and serve the reference recommender, and the regressed versions of it.

Training (numpy only): implicit ALS on the click log (`als`), plus two item features, recent
popularity and freshness, and a calibration that puts the personal score on a unit scale. The
arrays go into `model.tar.gz` (`artifacts`); `load` reads an extracted model directory and
returns a `Recommender` whose `recommend` turns a request body into a response body
(`ranking` holds the serving math).

Regressions are real defects in the training pipeline, registered in `DEFECTS`: each entry
swaps one pipeline step for a broken one, and the broken step's output is what the artifact
holds. Serving code is the same for every version; only the learned arrays differ.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diversity_monitor.recommender import als, artifacts, data, ranking
from diversity_monitor.recommender.request_schema import RequestError, parse

__all__ = ["DEFECTS", "Defect", "ModelError", "Recommender", "RequestError", "load", "train"]

FORMAT = "news-recommender-mf/1"
POPULARITY_WINDOW_HOURS = 24  # "trending" = clicks in the last day of the log
FRESHNESS_HALF_LIFE_HOURS = 24.0
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Hyperparameters (set on the seed-7 dataset; see tests/test_recommender.py for the outcome).
FACTORS, ALPHA, REGULARIZATION, ITERATIONS = 32, 8.0, 0.5, 8
PRIOR_WEIGHT = 5.0  # how strongly a known user's request history is pulled towards the learned vector
POPULARITY_WEIGHT, FRESHNESS_WEIGHT, CATEGORY_PENALTY = 0.5, 0.5, 1.0

ModelError = artifacts.ArtifactError


# --- pipeline steps and their broken variants -----------------------------------------------

def standardized_log(counts: np.ndarray) -> np.ndarray:
    """The popularity feature as the weights expect it: z-scored log1p(recent clicks)."""
    logged = np.log1p(counts)
    return (logged - logged.mean()) / (logged.std() or 1.0)


def raw_counts(counts: np.ndarray) -> np.ndarray:
    """The scaling bug: the scaler step dropped, raw click counts (0..hundreds) exported."""
    return counts.astype(np.float64)


def same_key(entity_id: str) -> str:
    return entity_id


def numeric_key(entity_id: str) -> str:
    """The join bug: feature tables re-keyed to the feature store's numeric ids ('u00042' -> '42')."""
    return str(int(entity_id[1:]))


def calibrated_scale(user_factors: np.ndarray, item_factors: np.ndarray) -> float:
    return _personal_scale(user_factors, item_factors)


def empty_sample_scale(user_factors: np.ndarray, item_factors: np.ndarray) -> float:
    """The calibration bug: the score sample was filtered down to nothing, its spread taken as
    "no signal", and the personal term's weight exported as 0."""
    return 0.0


@dataclass(frozen=True)
class Defect:
    description: str
    popularity_feature: Callable[[np.ndarray], np.ndarray]  # recent click counts -> exported feature
    feature_key: Callable[[str], str]  # user / article id -> key the feature tables are exported under
    personal_scale: Callable[[np.ndarray, np.ndarray], float] = calibrated_scale  # factors -> weight of q . y


DEFECTS: dict[str | None, Defect] = {
    None: Defect("healthy", standardized_log, same_key),
    "popularity-scaling": Defect(
        "popularity feature exported unscaled (raw click counts): the popularity term swamps the "
        "personal score and the diversity penalty, so everyone gets the same few trending stories",
        raw_counts,
        same_key,
    ),
    "frozen-slots": Defect(
        "user and article feature tables exported under numeric keys: every request's user and "
        "history lookups miss, so everyone is served as the same cold-start user; the re-ranker "
        "still spreads categories, but the same stories sit in the same slots",
        standardized_log,
        numeric_key,
    ),
    "popularity-only": Defect(
        "personal-score calibration exported as 0 (its score sample was filtered to nothing): ranking is "
        "popularity and freshness only, so everyone gets the same trending list; the re-ranker still "
        "spreads it over many categories, so the category count stays healthy",
        standardized_log,
        same_key,
        empty_sample_scale,
    ),
}


# --- training -------------------------------------------------------------------------------

def train(
    data_dir: str | Path, out_dir: str | Path, version: str, defect: str | None = None, seed: int = 0
) -> Path:
    """Learn from `data_dir`'s click log; write `out_dir/model.tar.gz` and return its path."""
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValueError(f"version {version!r}: use 1-64 of letters, digits, '.', '_', '-' (starting alphanumeric)")
    if defect not in DEFECTS:
        raise ValueError(f"defect {defect!r}: unknown; known: {', '.join(str(name) for name in DEFECTS)}")
    steps = DEFECTS[defect]
    paths = data.DatasetPaths.under(data_dir)
    catalog = data.read_csv(paths.catalog, ("article_id", "category", "published_at"))
    clicks = data.read_csv(paths.clicks, ("user_id", "article_id", "clicked_at"))
    article_ids = np.array([row["article_id"] for row in catalog])
    category_names = sorted({row["category"] for row in catalog})
    categories = np.array([category_names.index(row["category"]) for row in catalog], dtype=np.int16)
    article_row = {article: row for row, article in enumerate(article_ids)}
    unknown = sorted({row["article_id"] for row in clicks} - article_row.keys())
    if unknown:
        raise data.DataError(f"dataset file {paths.clicks}: {len(unknown)} clicked articles not in the catalog, e.g. {unknown[:3]}")
    user_ids = np.array(sorted({row["user_id"] for row in clicks}))
    user_row = {user: row for row, user in enumerate(user_ids)}
    rows = np.array([user_row[row["user_id"]] for row in clicks])
    columns = np.array([article_row[row["article_id"]] for row in clicks])
    clicked_at = _instants([row["clicked_at"] for row in clicks], paths.clicks)
    published_at = _instants([row["published_at"] for row in catalog], paths.catalog)
    cutoff = clicked_at.max()

    pairs, counts = np.unique(rows * len(article_ids) + columns, return_counts=True)
    user_factors, item_factors = als.factorize(
        pairs // len(article_ids), pairs % len(article_ids), counts, (len(user_ids), len(article_ids)),
        factors=FACTORS, alpha=ALPHA, regularization=REGULARIZATION, iterations=ITERATIONS, seed=seed,
    )
    recent = clicked_at > cutoff - np.timedelta64(POPULARITY_WINDOW_HOURS * 3600, "s")
    recent_counts = np.bincount(columns[recent], minlength=len(article_ids))
    age_hours = np.clip((cutoff - published_at).astype(np.float64) / 3600.0, 0.0, None)
    freshness = np.exp2(-age_hours / FRESHNESS_HALF_LIFE_HOURS)

    manifest = {
        "format": FORMAT,
        "version": version,
        "defect": defect,
        "defect_description": steps.description,
        "categories": category_names,
        "weights": {
            "personal_scale": steps.personal_scale(user_factors, item_factors),
            "popularity": POPULARITY_WEIGHT,
            "freshness": FRESHNESS_WEIGHT,
            "category_penalty": CATEGORY_PENALTY,
        },
        "fold_in": {"alpha": ALPHA, "regularization": REGULARIZATION, "prior_weight": PRIOR_WEIGHT},
        "training": {
            "seed": seed, "factors": FACTORS, "alpha": ALPHA, "regularization": REGULARIZATION,
            "iterations": ITERATIONS, "users": len(user_ids), "articles": len(article_ids),
            "clicks": len(clicks), "cutoff": f"{cutoff}Z",
            "clicks_sha256": hashlib.sha256(paths.clicks.read_bytes()).hexdigest(),
        },
    }
    arrays = {
        "article_ids": article_ids,  # output ids, what the response carries
        "article_keys": np.array([steps.feature_key(a) for a in article_ids]),  # join keys for history
        "user_keys": np.array([steps.feature_key(u) for u in user_ids]),  # join keys for user factors
        "categories": categories,
        "user_factors": user_factors.astype(np.float32),
        "item_factors": item_factors.astype(np.float32),
        "popularity": steps.popularity_feature(recent_counts).astype(np.float32),
        "freshness": freshness.astype(np.float32),
    }
    return artifacts.write_archive(out_dir, manifest, arrays)


def _instants(texts: list[str], source: Path) -> np.ndarray:
    try:
        return np.array([text.removesuffix("Z") for text in texts], dtype="datetime64[s]")
    except ValueError as error:
        raise data.DataError(f"dataset file {source}: bad timestamp ({error})") from error


def _personal_scale(user_factors: np.ndarray, item_factors: np.ndarray) -> float:
    """1 / spread of user-article scores, so the personal term is on the features' unit scale."""
    scores = user_factors @ item_factors.T
    spread = float(scores.std())
    return 1.0 / spread if spread > 0 else 1.0


# --- serving --------------------------------------------------------------------------------

_MANIFEST_SECTIONS = {
    "weights": set(ranking.Weights.__dataclass_fields__),
    "fold_in": {"alpha", "regularization", "prior_weight"},
}
_ARRAY_DIMENSIONS = {
    "article_ids": 1, "article_keys": 1, "user_keys": 1, "categories": 1,
    "user_factors": 2, "item_factors": 2, "popularity": 1, "freshness": 1,
}


class Recommender:
    """A loaded model: `recommend(request body) -> response body`. Thread-safe (read-only state)."""

    def __init__(self, manifest: dict, arrays: dict[str, np.ndarray], source: Path):
        self.version: str = manifest["version"]
        self.defect: str | None = manifest.get("defect")
        self.manifest = manifest
        self.article_ids = arrays["article_ids"].tolist()
        self.categories = arrays["categories"].astype(np.int64)
        self.user_factors = arrays["user_factors"].astype(np.float64)
        self.item_factors = arrays["item_factors"].astype(np.float64)
        self.popularity = arrays["popularity"].astype(np.float64)
        self.freshness = arrays["freshness"].astype(np.float64)
        # The feature joins: request ids -> rows of the learned tables.
        self.user_rows = {key: row for row, key in enumerate(arrays["user_keys"].tolist())}
        self.article_rows = {key: row for row, key in enumerate(arrays["article_keys"].tolist())}
        self.gram = self.item_factors.T @ self.item_factors
        self.weights = ranking.Weights(**manifest["weights"])
        self.fold_in = manifest["fold_in"]
        self._check(arrays, source)

    def _check(self, arrays: dict[str, np.ndarray], source: Path) -> None:
        n_articles = len(self.article_ids)
        expected = {
            "article_keys": (n_articles,), "categories": (n_articles,), "popularity": (n_articles,),
            "freshness": (n_articles,), "item_factors": (n_articles, self.item_factors.shape[1]),
            "user_factors": (arrays["user_keys"].shape[0], self.item_factors.shape[1]),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ModelError(f"model {source}: {name!r} has shape {arrays[name].shape}, expected {shape}")
        for name, joined in (("user_keys", self.user_rows), ("article_keys", self.article_rows)):
            if len(joined) != arrays[name].shape[0]:
                raise ModelError(f"model {source}: {name!r} holds duplicates")

    def recommend(self, body: dict) -> dict:
        request = parse(body)
        user_row = self.user_rows.get(request.user_id)
        # History ids the model has never seen (articles newer than the model) carry no signal.
        read = np.array(sorted({self.article_rows[a] for a in request.history if a in self.article_rows}), dtype=np.int64)
        if user_row is None:  # cold start: the history alone, regularised as in training
            prior, strength = np.zeros(self.item_factors.shape[1]), self.fold_in["regularization"]
        else:  # a known user: recent history updates the learned vector
            prior, strength = self.user_factors[user_row], self.fold_in["prior_weight"]
        query = (
            als.fold_in(read, self.item_factors, self.gram, prior, alpha=self.fold_in["alpha"], regularization=strength)
            if read.size else prior
        )
        scores = ranking.relevance(query, self.item_factors, self.popularity, self.freshness, self.weights)
        unknown: list[str] = []
        if request.candidates is not None:
            # Re-rank the impression's candidates: everything else is out, read or not; candidates the
            # model has never seen (newer than it) follow the ranked ones, in the request's order, unscored.
            known = np.array(sorted({self.article_rows[a] for a in request.candidates if a in self.article_rows}),
                             dtype=np.int64)
            read = np.setdiff1d(np.arange(len(self.article_ids)), known)
            unknown = list(dict.fromkeys(a for a in request.candidates if a not in self.article_rows))
        rows, adjusted = ranking.diversify(scores, self.categories, request.k, self.weights.category_penalty, read)
        recommendations = [{"article_id": self.article_ids[row], "score": round(float(score), 6)}
                           for row, score in zip(rows, adjusted)]
        recommendations += [{"article_id": article, "score": None} for article in unknown[:request.k - len(recommendations)]]
        return {"recommendations": recommendations, "model_version": self.version}


def load(model_dir: str | Path) -> Recommender:
    """The model in an extracted model directory (`model.json` + `model.npz`)."""
    model_dir = Path(model_dir)
    manifest = artifacts.read_manifest(model_dir)
    if manifest.get("format") != FORMAT:
        raise ModelError(f"model {model_dir}: format {manifest.get('format')!r}, this server reads {FORMAT!r}")
    if not isinstance(manifest.get("version"), str):
        raise ModelError(f"model {model_dir}: manifest 'version' must be a string")
    for section, keys in _MANIFEST_SECTIONS.items():
        if not isinstance(manifest.get(section), dict) or set(manifest[section]) != keys:
            raise ModelError(f"model {model_dir}: manifest {section!r} must have exactly {sorted(keys)}")
    return Recommender(manifest, artifacts.read_arrays(model_dir, _ARRAY_DIMENSIONS), model_dir)


def load_archive(archive: str | Path, model_dir: str | Path) -> Recommender:
    """Extract `model.tar.gz` into `model_dir` (as SageMaker does) and load it."""
    return load(artifacts.extract(archive, model_dir))
