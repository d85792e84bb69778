"""The bucket walker against the plain definition: every key sorted by UTF-8 bytes, those
after the marker kept, each rolled into its common prefix once."""

from hypothesis import given, settings
from hypothesis import strategies as st

from naiad.server.compat.s3.walk import Marker, Scan, common_prefix, has_files, items


def tree(keys: set[str]) -> Scan:
    """A folder tree holding ``keys`` as files."""

    def scan(folder: str) -> list[tuple[str, bool]]:
        out = set()
        for key in keys:
            if key.startswith(folder):
                name, slash, _ = key[len(folder) :].partition("/")
                out.add((name, bool(slash)))
        return list(out)

    return scan


def reference(
    keys: set[str], prefix: str, delimiter: str, marker: Marker
) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or marker.passed(key):
            continue
        rolled = common_prefix(key, prefix, delimiter)
        if rolled is None:
            out.append((key, False))
        elif not out or out[-1] != (rolled, True):
            out.append((rolled, True))
    return out


def files(keys: list[str]) -> set[str]:
    """Keys a folder tree can hold: no empty segment, none both a file and a folder."""
    ok = {k for k in keys if "" not in k.split("/")}
    return {k for k in ok if not any(o.startswith(k + "/") for o in ok)}


names = st.text(alphabet="ab/-.é0~", min_size=1, max_size=7)


@settings(max_examples=400, deadline=None)
@given(
    keys=st.lists(names, max_size=14),
    prefix=st.sampled_from(["", "a", "a/", "b-", "é", "a/b"]),
    delimiter=st.sampled_from(["", "/", "-", "a/", "b"]),
    after=st.sampled_from(["", "a", "a/", "a/b", "b-", "ab", "é"]),
    past=st.booleans(),
)
def test_items_match_the_definition(
    keys: list[str], prefix: str, delimiter: str, after: str, past: bool
) -> None:
    held = files(keys)
    marker = Marker(after, past)
    got = [(i.key, i.is_prefix) for i in items(tree(held), prefix, delimiter, marker)]
    assert got == reference(held, prefix, delimiter, marker)


def test_folders_are_ordered_as_their_keys() -> None:
    held = {"a.txt", "a/1", "a0", "a/b/2", "é", "Z"}
    assert [i.key for i in items(tree(held))] == sorted(held, key=lambda k: k.encode())


def test_a_folder_wholly_before_the_marker_is_not_read() -> None:
    read: list[str] = []
    inner = tree({"old/1", "old/2", "new/1"})

    def scan(folder: str) -> list[tuple[str, bool]]:
        read.append(folder)
        return inner(folder)

    assert [i.key for i in items(scan, marker=Marker("old/9"))] == []
    assert read == ["", "old/"]  # every key of new/ is before old/9: new/ is never read
    assert [i.key for i in items(scan, marker=Marker("new/1"))] == ["old/1", "old/2"]
    read.clear()
    assert [i.key for i in items(scan, marker=Marker("new/", past=True))] == ["old/1", "old/2"]
    assert "new/" not in read


def test_has_files_stops_at_the_first() -> None:
    assert has_files(tree({"a/b/c"}), "a/")
    assert not has_files(tree(set()), "")
