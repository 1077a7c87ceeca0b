"""MkDocs hook: the site's formulas as MathML, rendered when the site is built, so pages need no script.

``pymdownx.arithmatex`` (generic mode) wraps every formula of the markdown in
``<span class="arithmatex">\\(…\\)</span>`` (inline) or
``<div class="arithmatex">\\[…\\]</div>`` (display) and keeps the TeX away from
the markdown parser. Here each one becomes a ``<math>`` element, converted by
the ``latex2mathml`` package; browsers draw MathML themselves, so the theory
pages read the same offline as online, with no MathJax and no download.

A formula the converter rejects, or leaves a TeX command in, fails the build
with the page and the formula.
"""

from __future__ import annotations

import html
import re
from typing import Any

ARITHMATEX = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
DELIMITERS = {"span": ("\\(", "\\)"), "div": ("\\[", "\\]")}
TAG = re.compile(r"<[^>]+>")


class MathError(Exception):
    """A formula that did not convert; the message names it."""


def to_mathml(tex: str, display: bool) -> str:
    """``<math>…</math>`` for one TeX formula; :class:`MathError` if it does not convert cleanly."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(tex, display="block" if display else "inline")
    except Exception as error:  # the converter raises its own exception types
        raise MathError(f"cannot convert ${tex}$: {type(error).__name__}: {error}") from None
    leftover = re.findall(r"\\[A-Za-z]+", html.unescape(TAG.sub(" ", mathml)))
    if leftover:
        raise MathError(f"${tex}$ converts with TeX left in it: {', '.join(leftover)}")
    return mathml


def render(page_html: str) -> str:
    """Every arithmatex formula of a page's HTML replaced by MathML (its wrapper kept for styling)."""

    def one(match: re.Match) -> str:
        tag, body = match.group(1), html.unescape(match.group(2)).strip()
        opening, closing = DELIMITERS[tag]
        if not (body.startswith(opening) and body.endswith(closing)):
            raise MathError(f"unexpected arithmatex output: {match.group(0)[:200]}")
        mathml = to_mathml(body[len(opening) : -len(closing)].strip(), display=tag == "div")
        return f'<{tag} class="arithmatex">{mathml}</{tag}>'

    return ARITHMATEX.sub(one, page_html)


def on_page_content(html: str, page: Any, **kwargs: object) -> str:
    from mkdocs.exceptions import PluginError

    try:
        return render(html)
    except MathError as error:
        raise PluginError(f"{page.file.src_uri}: {error}") from None
