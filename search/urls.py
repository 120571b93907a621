"""The URLs a user gives (``--storage``, ``--tracking-uri``): passwords masked wherever they
are shown, and the tracking URI checked before anything is written.

``mask_url`` is the one masking function: every place that prints, logs or records a
``--storage`` or ``--tracking-uri`` (stderr, the summary, MLflow tags and params, tables,
error messages) goes through it. It is built on SQLAlchemy's URL parser, which reads a
password holding ``/``, ``:``, spaces or unicode; a raw ``@`` inside a password is ambiguous
in any URL (SQLAlchemy takes the first ``@``), so we mask up to the last ``@`` instead, which
hides more, never less. ``scrub`` removes a URL's password, in every spelling a driver might
echo it (as typed, percent-decoded, percent-encoded), from a message we did not write.
"""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import urllib.parse
import urllib.request
from pathlib import Path

from sqlalchemy.engine import make_url

from search.errors import UserError

MASK = "***"
# Query parameters that carry a secret (libpq and MySQL drivers read ``?password=``).
SECRET_KEYS = ("password", "passwd", "pwd", "secret", "token", "api_key", "apikey")
_QUERY_SECRET = re.compile(rf"([?&](?:{'|'.join(SECRET_KEYS)})=)([^&#]*)", re.IGNORECASE)
TRACKING_FORMS = "http://HOST:PORT, sqlite:///FILE, postgresql://..., mysql+pymysql://..."


class TrackingError(UserError):
    """The tracking URI cannot be used; one line for the user, password masked."""


def _split(url: str) -> tuple[str, str, str] | None:
    """(scheme, userinfo, rest) when ``url`` carries ``user:password@``, else ``None``."""
    scheme, sep, remainder = url.partition("://")
    userinfo, at, rest = remainder.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return None
    return scheme, userinfo, rest


def mask_url(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db``, and a secret in the
    query (``?password=secret``) -> ``?password=***``; anything without a password comes back
    unchanged."""
    base, question, query = url.partition("?")
    if question:  # the query is masked as written; the userinfo of what comes before it
        return (
            mask_url(base)
            + question
            + _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, "?" + query)[1:]
        )
    parts = _split(url)
    if parts is None:
        return url
    scheme, userinfo, rest = parts
    user = userinfo.split(":", 1)[0]
    try:
        parsed = make_url(f"{scheme}://{user}:{MASK}@{rest}")
        return parsed.render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (an http tracking URI, say)
        return f"{scheme}://{user}:{MASK}@{rest}"


# Characters a password cannot hold raw without changing where the URL's host begins: '@' in
# any URL; '/', '?' and '#' too in an HTTP URL (they end the host part there).
RESERVED = {"sql": "@", "http": "@/?#"}


def check_password_form(url: str) -> None:
    """A password holding a reserved character makes the host ambiguous (a driver would then
    connect to, and echo, a piece of the password as a host name): ask for the encoded form."""
    parts = _split(url)
    if parts is None:
        return
    password = parts[1].split(":", 1)[1]
    reserved = RESERVED["http" if parts[0] in ("http", "https") else "sql"]
    for char in reserved:
        if char in password:
            code = urllib.parse.quote(char, safe="")
            raise ValueError(f"the password holds {char!r}: write it as {code} (URL encoding)")


def secrets(url: str | None) -> list[str]:
    """The passwords of ``url`` (its userinfo's and its query's) in every spelling they may be
    echoed in (longest first)."""
    found = [m.group(2) for m in _QUERY_SECRET.finditer(url or "")]
    parts = _split(_QUERY_SECRET.sub(lambda m: m.group(1), url or ""))
    if parts is not None:
        found.append(parts[1].split(":", 1)[1])
    spellings = set()
    for password in found:
        plain = urllib.parse.unquote(password)
        spellings |= {
            password,
            plain,
            urllib.parse.quote(password, safe=""),
            urllib.parse.quote(plain, safe=""),
        }
    return sorted((s for s in spellings if s), key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """``text`` with every URL in ``urls`` masked and their passwords replaced by ``***``."""
    for url in urls:
        if url:
            text = text.replace(url, mask_url(url))
            for secret in secrets(url):
                text = text.replace(secret, MASK)
    return text


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(path: Path, sqlite: bool) -> None:
    """A database or journal file that a run may create or write: its directory exists and is
    writable, an existing file is writable, and an SQLite file is a sound database."""
    if not path.resolve().parent.is_dir():
        raise OSError(f"directory {path.parent} does not exist")
    if not path.exists():
        if not os.access(path.resolve().parent, os.W_OK):
            raise OSError(f"directory {path.parent} is not writable")
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise OSError(f"{path} is read-only (a study writes to its storage)")
    if sqlite:
        check_sqlite(path)


def check_sqlite(path: Path) -> None:
    """A file that is not an SQLite database, or whose pages are damaged, is refused here
    rather than by a traceback from inside Optuna."""
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise OSError(f"{path} is not an SQLite database")
    if not header:  # an empty file: SQLite makes a database of it
        return
    # A generous timeout: a process started at the same moment may be creating the schema.
    with sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=60) as conn:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    if verdict != "ok":
        raise OSError(f"{path} is damaged (SQLite quick_check: {verdict})")


def check_server(url: str) -> None:
    """A database server that answers (SQLAlchemy connects once, writes nothing)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def first_line(exc: BaseException, *urls: str | None) -> str:
    """The first line of what a library raised (the driver's own error, where SQLAlchemy wraps
    one), every URL's password removed: how a foreign message reaches the user."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return scrub(text[0] if text else type(exc).__name__, *urls)


def check_tracking_uri(uri: str) -> None:
    """Raise ``TrackingError`` unless ``uri`` is a tracking store MLflow 3 accepts and can
    reach, without creating anything: a server answers /health, a database connects, an
    SQLite file's directory exists (and a file there is an SQLite database)."""
    scheme = uri.partition("://")[0].split("+")[0] if "://" in uri else ""
    try:
        check_password_form(uri)
        if scheme in ("http", "https"):
            _check_reachable(uri)
        elif scheme == "sqlite":
            path = sqlite_path(uri)  # the same checks as --storage
            if path is not None:
                check_file(path, sqlite=True)
        elif scheme in ("postgresql", "mysql", "mssql"):
            check_server(uri)
        elif scheme.startswith("databricks") or uri.startswith("databricks"):
            return
        elif scheme in ("", "file"):
            if os.environ.get("MLFLOW_ALLOW_FILE_STORE") != "true":
                raise ValueError(
                    f"not a tracking URI (MLflow 3 refuses plain directories); use "
                    f"{TRACKING_FORMS}, or --no-mlflow"
                )
        else:
            raise ValueError(f"unknown scheme {scheme!r}; use {TRACKING_FORMS}")
    except TrackingError:
        raise
    except Exception as exc:  # drivers raise anything; the user gets one line
        raise TrackingError(f"--tracking-uri {mask_url(uri)}: {first_line(exc, uri)}") from None


def _check_reachable(uri: str) -> None:
    """Fail fast, before any training, when an HTTP tracking server does not answer."""
    parts = urllib.parse.urlsplit(uri)
    request = urllib.request.Request(
        parts._replace(
            netloc=parts.netloc.rpartition("@")[2],
            path=parts.path.rstrip("/") + "/health",
            query="",
            fragment="",
        ).geturl()
    )
    if parts.username:  # credentials travel as a header, never in the URL
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except OSError as exc:
        reason = scrub(str(getattr(exc, "reason", exc)), uri)
        raise TrackingError(
            f"--tracking-uri {mask_url(uri)}: MLflow server not reachable ({reason}); "
            "start one with `mlflow server --host 127.0.0.1` or pass --no-mlflow"
        ) from None
