"""Regenerate README.md's network table from the registry (`make readme`)."""

from pathlib import Path

import cnnzoo
from cnnzoo.cli import markdown_table

BEGIN, END = "<!-- models:begin -->\n", "<!-- models:end -->"

path = Path(__file__).resolve().parents[1] / "README.md"
text = path.read_text()
head, rest = text.split(BEGIN, 1)
tail = rest.split(END, 1)[1]
path.write_text(head + BEGIN + markdown_table(cnnzoo.list_models()) + "\n" + END + tail)
print(f"README.md: {len(cnnzoo.list_models())} networks")
