"""Model output is untrusted: book cards and error lines escape HTML and Markdown themselves, so a title such as
`<img src=x onerror=...>` or `[x](javascript:...)` is shown as the characters it is (rendered here with
markdown-it, a CommonMark renderer; tests/test_browser_security.py checks the real page in Chromium)."""
import re
from html import unescape

import pytest
from markdown_it import MarkdownIt

from app.answer_view import cards_markdown
from app.curate_view import fenced
from app.escape import html_text, markdown_text
from app.services import BookCard
from db.models import Book

PAYLOADS = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "[click](javascript:alert(1))",
            "![pic](http://127.0.0.1:9/x.png)", "**bold** _it_ `code`", "https://evil.example/a", "www.evil.example",
            "<http://evil.example>", "# heading", "| a | b |", "&lt;img&gt; & \\<b\\>", "1. list\n2. more"]

# CommonMark with raw HTML on (as an unsanitised renderer would be) and GFM tables and strikethrough.
render = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render


@pytest.mark.parametrize("payload", PAYLOADS)
def test_untrusted_text_renders_as_itself(payload):
    html = render(markdown_text(payload))
    for tag in ("<img", "<script", "<a ", "<strong", "<em", "<code", "<h1", "<table", "<ol", "<b>"):
        assert tag not in html, (payload, html)
    # What the reader sees is the text that came in (whitespace collapsed to one line).
    assert unescape(re.sub(r"<[^>]+>", "", html)).strip() == " ".join(payload.split())


def test_book_cards_escape_title_and_author_from_any_backend():
    card = BookCard("<img src=x onerror=alert(1)>", "[evil](javascript:alert(1))", None)
    html = render(cards_markdown([card], "en"))
    assert "<img" not in html and "<a " not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[evil](javascript:alert(1))" in html and "not in catalog" in html


def test_catalog_cards_escape_every_field():
    book = Book(title="T <b>x</b>", author="A [l](http://e)", translator=None, publisher="P *p*", year=2001,
                description="<script>d</script>", moods=["calm`"], language="en")
    html = render(BookCard("T", "A", book).markdown("en"))
    assert "<b>" not in html and "<a " not in html and "<script" not in html and "<em>p" not in html
    assert "&lt;script&gt;d&lt;/script&gt;" in html and "calm`" in html


def test_error_lines_keep_our_markdown_but_not_a_servers_html():
    line = html_text("openai: 500 <img src=x onerror=alert(1)> — `export OPENAI_API_KEY=...`")
    assert "<img" not in render(line) and "<code>export OPENAI_API_KEY=...</code>" in render(line)


def test_curate_shows_an_answer_that_contains_a_fence_inside_its_block():
    html = render(fenced("1. Book\n```\n<img src=x onerror=alert(1)>\n```"))
    assert html.count("<pre>") == 1 and "<img" not in html and "&lt;img" in html
