"""The reference recommender on MIND-format data: a few hand-written news.tsv / behaviors.tsv lines
imported, trained on, and served with an impression's candidates re-ranked."""

from __future__ import annotations

import json

import pytest

from diversity_monitor import cli
from diversity_monitor.recommender import data, mind, model
from diversity_monitor.recommender.request_schema import RequestError, parse

NEWS = """\
N1\tsports\tsoccer\tCup final tonight\tThe final.\thttps://assets.msn.com/N1\t[]\t[]
N2\tsports\tgolf\tGolf open starts\tTee off.\thttps://assets.msn.com/N2\t[]\t[]
N3\tnews\tnewsus\tCity council votes\tA vote.\thttps://assets.msn.com/N3\t[]\t[]
N4\tnews\tnewsworld\tStorm hits coast\tWind.\thttps://assets.msn.com/N4\t[]\t[]
N5\tfinance\tmarkets\tMarkets rally\tUp.\thttps://assets.msn.com/N5\t[]\t[]
N6\tfinance\tpersonal\tBudget guide\tSave.\thttps://assets.msn.com/N6\t[]\t[]
N7\tlifestyle\tfood\tBest soup recipes\tSoup.\thttps://assets.msn.com/N7\t[]\t[]
N8\tlifestyle\ttravel\tWeekend trips\tGo.\thttps://assets.msn.com/N8\t[]\t[]
"""
BEHAVIORS = """\
1\tU1\t11/11/2019 9:05:58 AM\tN1 N3\tN2-1 N4-0 N5-0
2\tU2\t11/11/2019 10:15:00 AM\tN5\tN6-1 N7-0 N1-0
3\tU3\t11/12/2019 8:00:00 AM\tN7 N8\tN1-0 N2-0 N8-1
4\tU1\t11/12/2019 1:30:00 PM\tN1 N3 N2\tN4-1 N6-0
5\tU4\t11/13/2019 7:45:10 AM\tN4\tN3-1 N5-0 N7-0
6\tU2\t11/14/2019 6:00:00 PM\tN5 N6\tN1-0 N3-1 N5-0 N8-0 N9-0
"""


@pytest.fixture
def mind_files(tmp_path):
    news, behaviors = tmp_path / "news.tsv", tmp_path / "behaviors.tsv"
    news.write_text(NEWS + "N9\tnews\tnewsus\tLate story\t\thttps://assets.msn.com/N9\t[]\t[]\n")
    behaviors.write_text(BEHAVIORS)
    return news, behaviors


def test_import_writes_the_training_folder(mind_files, tmp_path):
    paths = mind.import_mind(*mind_files, tmp_path / "data", validation_sessions=2)
    catalog = data.read_csv(paths.catalog, ("article_id", "category", "published_at"))
    assert [row["article_id"] for row in catalog] == [f"N{n}" for n in range(1, 10)]
    assert {row["article_id"]: row["published_at"] for row in catalog}["N2"] == "2019-11-11T09:05:58Z"  # first impression
    clicks = data.read_csv(paths.clicks, ("user_id", "article_id", "clicked_at"))
    # history clicks just before each user's first impression, clicked candidates of the 4 training impressions
    assert {"user_id": "U1", "article_id": "N1", "clicked_at": "2019-11-11T09:05:57Z"} in clicks
    assert {"user_id": "U1", "article_id": "N4", "clicked_at": "2019-11-12T13:30:00Z"} in clicks
    assert not [c for c in clicks if c["article_id"] == "N3" and c["user_id"] in ("U4", "U2")]  # held out
    sessions = [json.loads(line) for line in paths.validation_sessions.read_text().splitlines()]
    assert sessions[1] == {"session_id": "6", "request": {"user_id": "U2", "history": ["N5", "N6"], "k": 10,
                                                          "candidates": ["N1", "N3", "N5", "N8", "N9"]}}
    heldout = [json.loads(line) for line in paths.validation_heldout.read_text().splitlines()]
    assert heldout == [{"session_id": "5", "clicked": ["N3"]}, {"session_id": "6", "clicked": ["N3"]}]
    users = {json.loads(line)["user_id"]: json.loads(line)["split"] for line in paths.users.read_text().splitlines()}
    assert users == {"U1": "train", "U2": "validation", "U3": "train", "U4": "validation"}


def test_trained_on_mind_it_reranks_an_impressions_candidates(mind_files, tmp_path):
    paths = mind.import_mind(*mind_files, tmp_path / "data", validation_sessions=2)
    archive = model.train(paths.root, tmp_path / "model", "mind-v1")
    recommender = model.load_archive(archive, tmp_path / "extracted")
    session = json.loads(paths.validation_sessions.read_text().splitlines()[1])["request"]
    answer = recommender.recommend(session)
    returned = [item["article_id"] for item in answer["recommendations"]]
    assert sorted(returned) == sorted(session["candidates"])  # all five, nothing else, each once
    assert answer["model_version"] == "mind-v1"
    top_two = recommender.recommend({**session, "k": 2})["recommendations"]
    assert [item["article_id"] for item in top_two] == returned[:2]
    # a candidate newer than the model follows the ranked ones, unscored
    fresh = recommender.recommend({"user_id": "U9", "candidates": ["N404", "N2", "N7"], "k": 3})["recommendations"]
    assert [item["article_id"] for item in fresh][2] == "N404" and fresh[2]["score"] is None
    assert {item["article_id"] for item in fresh[:2]} == {"N2", "N7"}
    # without candidates: the whole catalog, as before
    assert len(recommender.recommend({"user_id": "U1", "k": 3})["recommendations"]) == 3


def test_candidates_are_checked():
    assert parse({"user_id": "u1"}).candidates is None
    with pytest.raises(RequestError, match="'candidates' must be a non-empty list"):
        parse({"user_id": "u1", "candidates": []})
    with pytest.raises(RequestError, match="'candidates' item 1"):
        parse({"user_id": "u1", "candidates": ["a1", 7]})


def test_a_malformed_mind_line_is_named(tmp_path):
    news, behaviors = tmp_path / "news.tsv", tmp_path / "behaviors.tsv"
    news.write_text(NEWS)
    behaviors.write_text(BEHAVIORS.replace("N4-1 N6-0", "N4-yes N6-0"))
    with pytest.raises(data.DataError, match=r"behaviors.tsv line 4: impression item 'N4-yes'"):
        mind.import_mind(news, behaviors, tmp_path / "out", validation_sessions=1)
    behaviors.write_text(BEHAVIORS.replace("11/12/2019 8:00:00 AM", "2019-11-12 08:00"))
    with pytest.raises(data.DataError, match=r"line 3: Time '2019-11-12 08:00'"):
        mind.import_mind(news, behaviors, tmp_path / "out", validation_sessions=1)


def test_train_help_says_what_data_dir_holds(capsys):
    with pytest.raises(SystemExit):
        cli.main(["recommender", "train", "--help"])
    shown = capsys.readouterr().out
    assert "catalog.csv  article_id,category,title,published_at" in shown
    assert "clicks.csv   user_id,article_id,clicked_at" in shown and "import-mind" in shown


def test_import_mind_command(mind_files, tmp_path, capsys):
    assert cli.main(["recommender", "import-mind", *map(str, mind_files), str(tmp_path / "d"),
                     "--validation-sessions", "1"]) == 0
    assert (tmp_path / "d" / "catalog.csv").is_file()
