"""Text from outside the webapp (file names, column names, cell values, API messages) shown as typed.

Streamlit renders the body of st.error, st.success, st.caption, st.markdown... as Markdown: a file
named `![p](http://host/pixel).csv` in a message would become an image the browser fetches, a cell
value `**x**` bold text, `:red[...]` coloured. Every such fragment goes through `escape_markdown`
before it joins a message; tables (st.dataframe, st.table) show cells as text already.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; these start inline markup (emphasis,
# code, links and images, HTML, strikethrough, maths, Streamlit's :colour[...] and :emoji:) or a
# heading / table cell. '.', '-' and '+' are left alone: they matter only at the start of a line,
# and file names are full of them.
MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>!#|~$:&])")


def escape_markdown(text: object) -> str:
    """`text` as a Markdown fragment that renders exactly as the characters it holds, on one line."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(str(text).splitlines()))


def code_names(names: list[str] | tuple[str, ...]) -> str:
    """Column names from a file, comma-separated: escaped rather than in `code` spans (a name may hold
    a backtick and close the span)."""
    return ", ".join(escape_markdown(name) for name in names)
