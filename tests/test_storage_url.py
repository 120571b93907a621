"""search/storage_url.py: what a --storage URL names, its checks, its masking, its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.storage_url import Kind, StorageError, StorageURL

SECRET = "s3cr/et@x"


@pytest.mark.parametrize(
    ("text", "kind", "path"),
    [
        ("sqlite:///optuna.db", Kind.SQLITE, Path("optuna.db")),
        ("sqlite:////abs/o.db", Kind.SQLITE, Path("/abs/o.db")),
        ("journal:runs/s.journal", Kind.JOURNAL, Path("runs/s.journal")),
        ("runs/s.journal", Kind.JOURNAL, Path("runs/s.journal")),
        ("postgresql://u:pw@db/optuna", Kind.SERVER, None),
        ("mysql+pymysql://root@127.0.0.1:3306/x", Kind.SERVER, None),
    ],
)
def test_each_form_is_known_by_its_kind_and_file(text, kind, path):
    url = StorageURL.parse(text)
    assert (url.kind, url.path, url.journal) == (kind, path, kind is Kind.JOURNAL)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("nonsense", "not a storage URL (sqlite:///FILE, postgresql://..., journal:FILE)"),
        ("sqlite://", "an in-memory SQLite database ends with this process"),
        ("sqlite:///:memory:", "an in-memory SQLite database ends with this process"),
    ],
)
def test_what_can_never_be_a_storage_is_refused_at_once(text, why):
    with pytest.raises(StorageError) as info:
        StorageURL.parse(text)
    assert str(info.value).startswith(f"--storage {text}: cannot open: {why}")


def test_the_password_is_never_shown_however_the_url_is_printed():
    url = StorageURL.parse(f"postgresql://bob:{SECRET.replace('@', '%40')}@db/x")
    for shown in (str(url), repr(url), f"{url}", url.masked):
        assert "s3cr" not in shown and "bob:***@db/x" in shown
    error = url.error(RuntimeError(f"server said: bad password {SECRET.replace('@', '%40')}"))
    assert "s3cr" not in str(error) and str(error).startswith("--storage postgresql://bob:***@")


def test_files_go_beside_a_file_storage_and_the_working_dir_for_a_server(tmp_path):
    sqlite = StorageURL.parse(f"sqlite:///{tmp_path / 'o.db'}")
    assert sqlite.results_dir() == tmp_path
    lock = sqlite.beside("../../my study")
    assert lock.parent == tmp_path  # an awkward study name never leads outside it
    assert lock.name.startswith("o.db.") and lock.name.endswith(".lock")
    server = StorageURL.parse("postgresql://db/x")
    assert server.results_dir() == Path.cwd() and server.beside("s") is None


def test_check_refuses_a_missing_directory_and_a_file_that_is_no_database(tmp_path):
    with pytest.raises(StorageError, match="directory .* does not exist"):
        StorageURL.parse(f"sqlite:///{tmp_path / 'no' / 'o.db'}").check()
    text = tmp_path / "notes.db"
    text.write_text("not a database")
    with pytest.raises(StorageError, match="is not an SQLite database"):
        StorageURL.parse(f"sqlite:///{text}").check()
    StorageURL.parse(f"sqlite:///{tmp_path / 'new.db'}").check()  # a new file is fine
    assert not (tmp_path / "new.db").exists()  # and nothing was written
