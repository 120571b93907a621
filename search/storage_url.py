"""``--storage`` as one value: ``StorageURL`` knows what kind of storage a URL names, checks it
without writing anything, shows it with its password masked, and says where the files that
belong beside it go (the trials tables, optuna-dashboard's artifacts, the claim lock's file).

    url = StorageURL.parse("postgresql://u:secret@db/optuna")   # the form, or StorageError
    url.check()                                                  # the server answers
    print(url)                                                   # postgresql://u:***@db/optuna

The kinds: an SQLite file (``sqlite:///FILE``, the default), Optuna's journal on a file
(``journal:FILE`` or a path ending in ``.journal``), or a database server (``postgresql://``,
``mysql+pymysql://``). Opening it is ``search.storage.open_storage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from search.errors import UserError
from search.names import file_stem
from search.urls import (
    check_file,
    check_password_form,
    check_server,
    first_line,
    mask_url,
    sqlite_path,
)

FORMS = "sqlite:///FILE, postgresql://..., journal:FILE"


class StorageError(UserError, ValueError):
    """The storage URL cannot be used; the message is one line with the password masked."""


class Kind(Enum):
    SQLITE = "sqlite"  # one file; processes of one machine take turns
    JOURNAL = "journal"  # Optuna's JournalStorage on a file: one machine, no heartbeats
    SERVER = "server"  # PostgreSQL or MySQL/MariaDB: many machines, heartbeats


@dataclass(frozen=True)
class StorageURL:
    text: str  # as given, password included: shown only as ``masked``
    kind: Kind
    path: Path | None = None  # the file of an SQLite or journal storage

    @classmethod
    def parse(cls, text: str) -> StorageURL:
        """The URL's kind and file, or ``StorageError`` for what can never be a storage."""
        if text.startswith("journal:") or text.endswith(".journal"):
            return cls(text, Kind.JOURNAL, Path(text.removeprefix("journal:")))
        if "://" not in text:
            raise cls(text, Kind.SERVER).error(f"not a storage URL ({FORMS})")
        if (path := sqlite_path(text)) is not None:
            return cls(text, Kind.SQLITE, path)
        if text.startswith("sqlite:"):
            raise cls(text, Kind.SQLITE).error(
                "an in-memory SQLite database ends with this process and has no lock for "
                "workers; use sqlite:///FILE"
            )
        return cls(text, Kind.SERVER)

    @property
    def masked(self) -> str:
        return mask_url(self.text)

    def __str__(self) -> str:  # an f-string never shows the password
        return self.masked

    def __repr__(self) -> str:
        return f"StorageURL({self.masked!r})"

    @property
    def journal(self) -> bool:
        return self.kind is Kind.JOURNAL

    def error(self, why: object) -> StorageError:
        """``--storage URL: cannot open: WHY`` in one line, the password masked everywhere."""
        reason = first_line(why, self.text) if isinstance(why, BaseException) else why
        return StorageError(f"--storage {self.masked}: cannot open: {reason}")

    def check(self) -> None:
        """Everything that can be known without writing: the directory, a file that is
        read-only or not a database, a password's form, a server that does not answer."""
        try:
            if self.path is not None:
                check_file(self.path, sqlite=self.kind is Kind.SQLITE)
            else:
                check_password_form(self.text)
                check_server(self.text)
        except Exception as exc:  # drivers raise anything; the user gets one line
            raise self.error(exc) from None

    def results_dir(self) -> Path:
        """Where the trials tables and artifacts go: beside a file, else the working dir."""
        return self.path.parent if self.path is not None else Path.cwd()

    def beside(self, study: str) -> Path | None:
        """The claim lock's file for ``study`` beside a file-based storage (``None``: a server
        holds its own lock)."""
        if self.path is None:
            return None
        return self.path.with_name(f"{self.path.name}.{file_stem(study)}.lock")
