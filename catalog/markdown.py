"""Repository descriptions: Markdown in, HTML that is safe to put in a page out.

``render(text)`` is the only entry. Two layers, so that one mistake is not enough for script injection:

1. markdown-it-py with the ``commonmark`` preset, **raw HTML disabled** (``<script>`` in a description is text, shown
   escaped), no linkify (bare URLs stay text), GitHub-style tables on;
2. nh3 (the ammonia sanitizer) over the result with an allow-list: only the tags Markdown produces, only the
   attributes listed below, URLs only ``http``, ``https`` and ``mailto`` (or relative), every link gets
   ``rel="nofollow noopener"``; ``style`` survives only as ``text-align`` on table cells (column alignment).

So ``javascript:`` and ``data:`` links lose their ``href``, event handlers (``onerror=``) never survive, and
``<img>`` keeps only an ``http(s)`` or relative ``src``. The output is a fragment (no ``<html>``), "" for "".
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

__all__ = ["ALLOWED_TAGS", "URL_SCHEMES", "render"]

ALLOWED_TAGS = frozenset(
    {
        *("p", "br", "hr", "blockquote", "pre", "code", "strong", "em", "s", "del"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "a", "img"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener"


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
        filter_style_properties={"text-align"},
    )


def render(text: str) -> str:
    """The sanitized HTML of Markdown ``text`` (see the module docstring for what is allowed)."""
    if not text.strip():
        return ""
    return _cleaner().clean(_parser().render(text))
