"""Rules for names and keys, checked the same way by the server and the SDK."""

import re

from naiad.core.errors import InvalidInput

MAX_NAME = 200
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000

# Matched with fullmatch: "$" would also match before a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-./ :]*")


def check_name(name: str, what: str = "name") -> str:
    """Resource names: letters, digits, '.', '_', '-'; they appear in URLs and CLI arguments."""
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"{what} {name!r} is not valid: use 1-{MAX_NAME} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'."
        )
    return name


def check_key(key: str, what: str = "key") -> str:
    """Metric, param and tag keys: as in MLflow, plus ':'; no '..' so keys stay path-safe."""
    if not key or len(key) > MAX_KEY or not _KEY.fullmatch(key) or ".." in key or "//" in key:
        raise InvalidInput(
            f"{what} {key!r} is not valid: use 1-{MAX_KEY} letters, digits, spaces or "
            "'_-./:', starting with a letter, digit or '_', without '..' or '//'."
        )
    return key


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None. PostgreSQL refuses NUL characters in text, and
    a lone surrogate (JSON can carry "\\ud800") has no UTF-8 form, so neither can be read back.
    """
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored; remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (like \\ud800), which is not text; send valid Unicode"
    return None


def check_text(text: str, what: str) -> str:
    problem = text_problem(text)
    if problem:
        raise InvalidInput(f"{what} {problem}.")
    return text
