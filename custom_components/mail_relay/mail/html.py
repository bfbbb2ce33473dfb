"""HTML to plain text, the one converter for incoming events and outgoing mail.

Events carry text an automation can read or speak; mail sent as HTML only
gets a text alternative for clients that do not show HTML. Both want the
same thing: the readable words with paragraph breaks, no markup, scripts or
styles. The standard library's lenient HTMLParser is enough for that.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Tags after which a reader expects a new line.
_BLOCK = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "ul",
        "ol",
        "blockquote",
        "hr",
    }
)
# Tags whose content is not text a person reads.
_SKIP = frozenset({"script", "style", "head", "title"})
_SPACES = re.compile(r"[ \t\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    """Collect the readable text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skip:
            self._skip -= 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Turn HTML into plain text: paragraph breaks kept, runs of spaces one."""
    parser = _TextCollector()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # pragma: no cover - HTMLParser is very lenient
        pass
    lines = (
        _SPACES.sub(" ", line).strip() for line in "".join(parser.parts).splitlines()
    )
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
