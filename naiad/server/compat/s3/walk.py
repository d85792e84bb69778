"""Keys of a bucket in S3's order, read off a tree of folders lazily.

S3 lists keys in UTF-8 binary order, which is code point order for Python strings. A
folder's keys all begin with its name and '/', so sorting each folder's entries by name,
with '/' after a folder's, yields whole keys in order, and a listing reads only the
folders its prefix, marker and delimiter leave open: a folder wholly before the marker is
skipped, a folder that falls in one common prefix is looked into only until it shows one
file.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

# A folder's visible entries: (name, is_folder), in any order; "" is the bucket's top.
Scan = Callable[[str], list[tuple[str, bool]]]


@dataclass(frozen=True)
class Marker:
    """Where a listing resumes: after the key ``after`` and, when ``past``, after every key
    that begins with it too (a page that ended on a common prefix)."""

    after: str = ""
    past: bool = False

    def passed(self, key: str) -> bool:
        """Whether ``key`` is at or before the marker."""
        return key <= self.after or (self.past and key.startswith(self.after))

    def passed_folder(self, folder: str) -> bool:
        """Whether every key beginning with ``folder`` is at or before the marker."""
        if self.past and folder.startswith(self.after):
            return True
        return folder < self.after and not self.after.startswith(folder)


@dataclass(frozen=True)
class Item:
    """A key, or a common prefix when the listing has a delimiter."""

    key: str
    is_prefix: bool = False


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` rolls up into: up to the first ``delimiter`` after
    ``prefix``; None without a delimiter or when there is none past the prefix."""
    if not delimiter or not key.startswith(prefix):
        return None
    at = key.find(delimiter, len(prefix))
    return None if at < 0 else key[: at + len(delimiter)]


def has_files(scan: Scan, folder: str, marker: Marker | None = None) -> bool:
    """Whether the folder holds a file after the marker at any depth (read until the first)."""
    marker = marker or Marker()
    entries = scan(folder)
    if any(not is_folder and not marker.passed(folder + name) for name, is_folder in entries):
        return True
    return any(
        has_files(scan, f"{folder}{name}/", marker)
        for name, is_folder in entries
        if is_folder and not marker.passed_folder(f"{folder}{name}/")
    )


def _ordered(scan: Scan, folder: str) -> list[tuple[str, bool]]:
    return sorted(scan(folder), key=lambda entry: entry[0] + "/" if entry[1] else entry[0])


def _items(scan: Scan, folder: str, prefix: str, delimiter: str, marker: Marker) -> Iterator[Item]:
    for name, is_folder in _ordered(scan, folder):
        key = f"{folder}{name}/" if is_folder else f"{folder}{name}"
        if not (key.startswith(prefix) or (is_folder and prefix.startswith(key))):
            continue
        if is_folder and marker.passed_folder(key):
            continue
        rolled = common_prefix(key, prefix, delimiter)
        if rolled is not None:
            holds = has_files(scan, key, marker) if is_folder else not marker.passed(key)
            if holds:
                yield Item(rolled, True)
        elif is_folder:
            yield from _items(scan, key, prefix, delimiter, marker)
        elif not marker.passed(key):
            yield Item(key)


def items(
    scan: Scan, prefix: str = "", delimiter: str = "", marker: Marker | None = None
) -> Iterator[Item]:
    """Keys under ``prefix`` after ``marker``, in order, a common prefix once in place of
    the keys it rolls up (one holding a key after the marker)."""
    last = None
    for item in _items(scan, "", prefix, delimiter, marker or Marker()):
        if item.is_prefix:
            if item.key == last:
                continue
            last = item.key
        yield item
