"""``catalog.markdown.render``: Markdown becomes HTML, and no classic XSS vector survives."""

from __future__ import annotations

import re

import pytest

from catalog.markdown import render

XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">raw link</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![img](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![img](javascript:alert(1))",
    '<iframe src="https://evil.example"></iframe>',
    "<svg onload=alert(1)>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '[x](https://ok.example "title" onclick="alert(1)")',
    "<style>body{display:none}</style>",
    "<!-- comment --><b onmouseover=alert(1)>bold</b>",
    "[a]: javascript:alert(1)\n\n[link][a]",
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">',
]


def _dangerous(html: str) -> list[str]:
    """Every live HTML construct in ``html`` that could run script or load a non-http(s) URL."""
    tags = re.findall(r"<[a-zA-Z][^>]*>", html)  # escaped text (&lt;...) is not a tag
    found = [tag for tag in tags if re.match(r"<(script|iframe|svg|style|math|object|embed|div)\b", tag, re.I)]
    found += [tag for tag in tags if re.search(r"\son\w+\s*=", tag, re.I)]
    urls = [url for tag in tags for url in re.findall(r'(?:href|src)="([^"]*)"', tag)]
    return found + [url for url in urls if not _safe_url(url)]


def _safe_url(url: str) -> bool:
    scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", url)
    return scheme is None or scheme.group(1).lower() in ("http", "https", "mailto")


@pytest.mark.parametrize("text", XSS_VECTORS)
def test_xss_vectors_are_neutralised(text: str) -> None:
    html = render(text)
    assert _dangerous(html) == [], html


def test_raw_html_is_shown_as_text() -> None:
    assert render("<b>hi</b> <script>x()</script>") == "<p>&lt;b&gt;hi&lt;/b&gt; &lt;script&gt;x()&lt;/script&gt;</p>\n"


def test_markdown_features() -> None:
    html = render("# Title\n\n*em* **strong** `code`\n\n- one\n- two\n\n```\nblock\n```\n\n> quote")
    for fragment in ("<h1>Title</h1>", "<em>em</em>", "<strong>strong</strong>", "<code>code</code>", "<li>two</li>"):
        assert fragment in html
    assert "<pre><code>block\n</code></pre>" in html
    assert "<blockquote>" in html


def test_links_get_nofollow_and_only_web_schemes() -> None:
    html = render("[site](https://example.com/a?b=1) [mail](mailto:x@example.com) [rel](/alice/app)")
    assert '<a href="https://example.com/a?b=1" rel="nofollow noopener">site</a>' in html
    assert '<a href="mailto:x@example.com" rel="nofollow noopener">mail</a>' in html
    assert '<a href="/alice/app" rel="nofollow noopener">rel</a>' in html
    assert render("[ftp](ftp://example.com/file)") == '<p><a rel="nofollow noopener">ftp</a></p>\n'


def test_no_linkify_and_tables() -> None:
    assert "<a" not in render("see https://example.com")
    html = render("| a | b |\n|--:|---|\n| 1 | 2 |")
    assert '<th style="text-align:right">a</th>' in html
    assert "<td>2</td>" in html


def test_images_keep_only_web_sources() -> None:
    assert (
        render("![logo](https://example.com/logo.png)")
        == '<p><img src="https://example.com/logo.png" alt="logo"></p>\n'
    )
    assert "src=" not in render("![x](data:image/png;base64,AAAA)")


def test_empty_description() -> None:
    assert render("") == ""
    assert render("  \n ") == ""
