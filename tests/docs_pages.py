"""Reading the terminal output pasted into the command pages (docs/cli/*.md), for the tests."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")
PATH = re.compile(r"\S+/\S+")


def console_blocks(page: str) -> list[list[str]]:
    """The lines of each ```` ```console ```` block of ``docs/cli/<page>``."""
    text = (ROOT / "docs" / "cli" / page).read_text(encoding="utf-8")
    return [b.strip("\n").splitlines() for b in re.findall(r"```console\n(.*?)```", text, flags=re.S)]


def shape(line: str) -> str:
    """A printed line with its numbers and paths masked and its spacing collapsed."""
    return " ".join(NUMBER.sub("#", PATH.sub("<path>", line)).split())
