"""search/urls.py: one masking function for every URL a user gives, and the tracking check."""

from __future__ import annotations

import pytest

from search.urls import TrackingError, check_tracking_uri, mask_url, scrub, secrets

PASSWORDS = ["s3cret", "SECRET/x", "p@ss", "a:b", "p%40ss", "two words", "pässwörd€", "@/:%40 ü"]


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    "template",
    [
        "postgresql://bob:{}@db.example:5432/optuna",
        "mysql+pymysql://root:{}@127.0.0.1/x",
        "http://alice:{}@127.0.0.1:5000",
    ],
)
def test_mask_hides_every_password(template, password):
    url = template.format(password)
    masked = mask_url(url)
    assert masked == template.format("***")
    for secret in secrets(url):
        assert secret not in masked


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://u@h:1/x?password=SECRET", "postgresql://u@h:1/x?password=***"),
        (
            "postgresql://u@h/x?sslmode=require&PASSWORD=s%40x",
            "postgresql://u@h/x?sslmode=require&PASSWORD=***",
        ),
        (
            "mysql+pymysql://u:apw1@h/x?passwd=bpw2&charset=utf8",
            "mysql+pymysql://u:***@h/x?passwd=***&charset=utf8",
        ),
    ],
)
def test_a_password_in_the_query_is_masked_too(url, masked):
    assert mask_url(url) == masked
    secret = url.rsplit("=", 1)[1] if "charset" not in url else "bpw2"
    plain = secret.replace("%40", "@")
    text = scrub(f"could not connect with {url}: password '{plain}' ({secret}) rejected", url)
    assert mask_url(url) in text
    assert f"'{plain}'" not in text and f"({secret})" not in text


def test_urls_without_a_password_are_unchanged():
    for url in (
        "sqlite:///optuna.db",
        "journal:./s.journal",
        "mysql+pymysql://root@h/db",
        "http://127.0.0.1:5000",
        "postgresql://bob@db/x",
        "garbage",
    ):
        assert mask_url(url) == url


def test_scrub_removes_every_spelling_of_the_password():
    url = "postgresql://u:p%40ss word@h/db"
    text = f"connect to {url} failed: password 'p@ss word' (p%40ss%20word) rejected"
    cleaned = scrub(text, url)
    assert "p@ss" not in cleaned and "p%40ss" not in cleaned and "ss word" not in cleaned
    assert "postgresql://u:***@h/db" in cleaned


@pytest.mark.parametrize(
    "uri, message",
    [
        ("garbage", "not a tracking URI"),
        ("./runs", "not a tracking URI"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("sqlite:////no/such/dir/mlflow.db", "directory /no/such/dir does not exist"),
    ],
)
def test_bad_tracking_uris_are_refused_without_writing(uri, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(TrackingError, match=message):
        check_tracking_uri(uri)
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_tracking_file_that_is_not_a_database(tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database")
    with pytest.raises(TrackingError, match="is not an SQLite database"):
        check_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
