"""`--memory` as people write sizes: a unit or none (MiB), and a sentence for anything else."""

import pytest

from naiad.cli.output import parse_memory
from naiad.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "mib"),
    [("512m", 512), ("4g", 4096), ("1.5GiB", 1536), ("2048", 2048), ("300MB", 300), ("64 M", 64)],
)
def test_sizes_read_as_mib(text: str, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["lots", "", "-1g", "0", "4 gallons", "1e3"])
def test_anything_else_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"is not a memory size; give e\.g\. 512m, 4g"):
        parse_memory(text)
