"""Text from a model, a provider or a catalog file, made safe to put into Markdown: it shows as the characters it
is, never as markup. Any backend's answer is untrusted (an admin-added server, a fine-tuned adapter, or a
request that asks a model to write `<img src=x onerror=...>`), so the page must not depend on Gradio's sanitizer.

    markdown_text("<img src=x onerror=alert(1)> [x](javascript:alert(1))")   # shown exactly as typed
    html_text(error_line)                                                     # HTML escaped, Markdown kept
"""
from __future__ import annotations

import html
import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark: escaping them leaves no emphasis,
# link, image, code span, heading, list, table or autolink. & < > " ' become HTML entities instead (a
# backslash before '&' would stop the entity from being read, and the page would show "&lt;").
_PUNCTUATION = re.compile(r"""([!#$%()*+,\-./:;=?@\[\\\]^_`{|}~])""")


def markdown_text(text: str) -> str:
    """One line of untrusted text for a Markdown component: HTML-escaped and Markdown-inert."""
    flat = re.sub(r"\s+", " ", str(text or "")).strip()
    return html.escape(_PUNCTUATION.sub(r"\\\1", flat), quote=True)


def html_text(text: str) -> str:
    """Untrusted text inside our own Markdown (an error line): no HTML, our formatting kept."""
    return html.escape(str(text or ""), quote=False)
