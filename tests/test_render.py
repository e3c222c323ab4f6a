"""Rendering one post can never stop the build of the others; raw HTML reaches readers
only through an allow-list; and the rendering cost of one post is bounded.

The generated (hypothesis) side of these properties is in tests/test_hostile.py; here
are the reported reproducers and the exact expectations.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

import feeds.build
import feeds.markdown
from feeds import cli
from feeds.build import Build
from feeds.config import Settings
from feeds.errors import ConfigError
from feeds.markdown import render
from feeds.pipeline import Pipeline
from feeds.posts import SUMMARY_SOURCE_CHARS
from feeds.xmlfeeds import is_iri

from conftest import MakeSettings, WritePost, post_text
from feedcheck import NS, check_documents, strict_xml, unsafe_html

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BASE = "https://example.com/posts/harbour/"


def build(settings: Settings) -> Build:
    return Pipeline(settings).run(NOW)


def contents(built: Build) -> dict[str, list[str]]:
    """The HTML content of every entry as each document carries it ("" for none), by format."""
    documents = built.documents
    rss = strict_xml(documents.rss).iterfind("channel/item", NS)
    atom = strict_xml(documents.atom).iterfind("atom:entry", NS)
    feed = json.loads(documents.json)
    return {
        "rss": [item.findtext("content:encoded", "", NS) for item in rss],
        "atom": [entry.findtext("atom:content", "", NS) for entry in atom],
        "json": [item.get("content_html", "") for item in feed["items"]],
    }


# ---------------------------------------------------------------------------------------
# 1. One post never stops the build


REPORTED_BODIES = ["<html>\n", "<!DOCTYPE html>\n", "Some text</body><body>\n"]


@pytest.mark.parametrize("body", REPORTED_BODIES)
def test_reported_bodies_build_with_the_other_posts(
    write_post: WritePost, settings: Settings, body: str
) -> None:
    # Each raised out of lxml.html.fragment_fromstring ("too many bodies", "Document is
    # empty"), so that `feeds build` exited 1 and the service never published again.
    write_post("hostile.md", post_text(title="Hostile", date="1602734331", body=body))
    write_post("normal.md", post_text(title="Normal"))
    built = build(settings)
    rss, _, _ = check_documents(built.documents)
    assert [entry.title for entry in rss.entries] == ["Hostile", "Normal"]
    assert built.problems == ()
    assert contents(built)["rss"][1].startswith("<p>The boats came in early today.</p>")


def test_reported_body_with_feeds_build(
    write_post: WritePost, tmp_path: Path, content_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for number, body in enumerate(REPORTED_BODIES):
        write_post(f"hostile-{number}.md", post_text(title=f"Hostile {number}", body=body))
    write_post("normal.md", post_text(title="Normal", date="1602734331"))
    config = tmp_path / "feeds.toml"
    config.write_text(f'base_url = "https://example.com"\ncontent_dir = "{content_dir}"\n')
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--strict", "--out", str(out)]) == 0
    assert "4 posts used" in capsys.readouterr().out
    assert b"<title>Normal</title>" in (out / "rss.xml").read_bytes()


@pytest.mark.parametrize(
    ("line", "written"),
    [
        pytest.param('id: "http://["', "http://[", id="id"),
        pytest.param("guid: 'a://b]['", "a://b][", id="guid"),
    ],
)
def test_reported_ids_that_are_no_iri(
    write_post: WritePost, settings: Settings, line: str, written: str
) -> None:
    # urlsplit raised "Invalid IPv6 URL" out of atom_id, and so out of the whole build.
    write_post("odd-id.md", post_text(title="Odd id", date="1602734331", extra=line))
    write_post("normal.md", post_text(title="Normal"))
    built = build(settings)
    rss, _atom, feed = check_documents(built.documents)
    assert built.problems == ()
    guid = strict_xml(built.documents.rss).find("channel/item/guid")
    assert guid is not None and guid.text == written and guid.get("isPermaLink") == "false"
    atom_id = strict_xml(built.documents.atom).findtext("atom:entry/atom:id", namespaces=NS)
    assert atom_id == uuid.uuid5(uuid.NAMESPACE_URL, written).urn
    assert feed["items"][0]["id"] == written
    assert [entry.title for entry in rss.entries] == ["Odd id", "Normal"]


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/posts/a/",
        "urn:x:1",
        "tag:example.com,2024:post-1",
        "mailto:ada@example.org",
        "http://[::1]/x",
        "http://[v1.fe]/",
        "https://bücher.example/straße?q=ü#f",
        "http://a/%41",
        "x:",
    ],
)
def test_ids_that_are_iris(text: str) -> None:
    assert is_iri(text)


@pytest.mark.parametrize(
    "text",
    [
        "http://[",
        "a://b][",
        "http://[::1%eth0]/",
        "http://[zz]/",
        "http://a]b/",
        "http://a b",
        "urn:x:<1>",
        "http://a/%zz",
        "http://a#b#c",
        "http://a:port/",
        "http://a\u200e/",
        "http://x/\ue000",  # private use is for queries only (RFC 3987 iprivate)
        "http://\uff03/",  # NFKC makes the host "#": Python refuses it
        "shared",
        "/posts/p2/",
        "1:x",
        "",
    ],
)
def test_ids_that_are_no_iri(text: str) -> None:
    assert not is_iri(text)


def test_an_unforeseen_render_error_costs_one_post_its_content(
    write_post: WritePost,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The safety net behind the root-cause fixes: whatever still raises while one post
    # is rendered leaves that entry with its summary and link, reported as a problem.
    real_render = feeds.build.render
    calls: list[str] = []

    def render_or_fail(body: str, base_url: str) -> feeds.markdown.Rendered:
        calls.append(base_url)
        if "BOOM" in body:
            raise RuntimeError("renderer bug")
        return real_render(body, base_url)

    monkeypatch.setattr(feeds.build, "render", render_or_fail)
    write_post("boom.md", post_text(title="Boom", date="1602734331", body="BOOM\n"))
    write_post("normal.md", post_text(title="Normal"))
    pipeline = Pipeline(settings)
    built = pipeline.run(NOW)
    rss, _, feed = check_documents(built.documents)
    assert [entry.title for entry in rss.entries] == ["Boom", "Normal"]
    assert [str(problem) for problem in built.problems] == [
        "boom.md: content: left out of the feeds, the entry keeps its summary: "
        "unexpected RuntimeError: RuntimeError('renderer bug')"
    ]
    assert (built.used, built.skipped, built.degraded) == (2, 0, frozenset({"boom.md"}))
    assert [bool(html) for html in contents(built)["rss"]] == [False, True]
    assert feed["items"][0]["content_text"] == "Fishing boats, gulls and a cup of tea."
    assert rss.entries[0].summary == "Fishing boats, gulls and a cup of tea."
    assert "unexpected error rendering boom.md" in caplog.text
    # The next build reuses the entry made without content: no second try, no second
    # traceback, and the problem is still reported.
    calls.clear()
    caplog.clear()
    again = pipeline.run(NOW)
    assert calls == [] and caplog.text == ""
    assert again.problems == built.problems


def test_check_lists_a_post_that_lost_its_content(
    write_post: WritePost, tmp_path: Path, content_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post("huge.md", post_text(title="Huge", body="word " * 400))
    write_post("normal.md", post_text(title="Normal"))
    config = tmp_path / "feeds.toml"
    config.write_text(
        f'base_url = "https://example.com"\ncontent_dir = "{content_dir}"\nmax_render_bytes = 1000\n'
    )
    assert cli.main(["--config", str(config), "check"]) == 1
    assert capsys.readouterr().out == (
        "huge.md: content: left out of the feeds, the entry keeps its summary: "
        "2000 bytes, over max_render_bytes (1000)\n"
    )


# ---------------------------------------------------------------------------------------
# 2. Raw HTML and URLs: an allow-list

HOSTILE_HTML = {
    "javascript-href": ('<a href="javascript:alert(1)">x</a>', "<p><a>x</a></p>\n"),
    "javascript-href-obfuscated": ('<a href=" jav&#x61;\tscript&colon;alert(1)">x</a>', "<p><a>x</a></p>\n"),
    "vbscript-href": ('<a href="VBScript:msgbox(1)">x</a>', "<p><a>x</a></p>\n"),
    "data-href": ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "<p><a>x</a></p>\n"),
    "onerror": ('<img src="gulls.png" onerror="alert(1)">', f'<img src="{BASE}gulls.png">'),
    "onclick-on-a-block": ('<div onclick="alert(1)" class="note">Note</div>', '<div class="note">Note</div>'),
    "iframe-data": ('<iframe src="data:text/html,<script>alert(1)</script>"></iframe>\n', ""),
    "script": ("<script>alert(1)</script>\n", ""),
    "style-element": ("<style>body { display: none }</style>\n", ""),
    "style-attribute": ('<p style="background:url(javascript:alert(1))">x</p>', "<p>x</p>"),
    "object-embed": ('<object data="x.swf"></object><embed src="x.swf">\n', "<p></p>\n"),
    "form": ('<form action="https://evil.example/"><input name="pw">Log in</form>\n', ""),
    "svg-script": ("<svg><script>alert(1)</script></svg>", "<p></p>\n"),
    "noscript-trick": (
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
        "<p></p>\n",
    ),
    "meta-refresh": ('<meta http-equiv="refresh" content="0;url=javascript:alert(1)">\n', ""),
    "base": ('<base href="javascript:/">\n', ""),
    "data-image": ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "<img>"),
    "comment": ("<!--[if IE]><script>alert(1)</script><![endif]-->\n", ""),
    "malformed-url": ('<a href="http://[">x</a>', "<p><a>x</a></p>\n"),
    "unknown-element": ('<x-card onmouseover="alert(1)">kept</x-card>', "<p>kept</p>\n"),
}


@pytest.mark.parametrize(("body", "expected"), HOSTILE_HTML.values(), ids=HOSTILE_HTML.keys())
def test_hostile_html_is_removed_from_every_format(
    write_post: WritePost, settings: Settings, body: str, expected: str
) -> None:
    write_post("harbour.md", post_text(body=body))
    built = build(settings)
    check_documents(built.documents)  # which also looks for anything unsafe in them
    assert contents(built) == {"rss": [expected], "atom": [expected], "json": [expected]}


def test_hostile_html_check_finds_what_it_looks_for() -> None:
    # The checker that the tests and the properties rely on sees each construct.
    for body, _ in HOSTILE_HTML.values():
        if "<x-card" not in body and "http://[" not in body:
            assert unsafe_html(body), body


ORDINARY_MARKDOWN = """\
# Title *em* **strong** ~~gone~~

| left | center | right |
|:-----|:------:|------:|
| a    | `b`    | [c](../c/ "C title") |

Text with a footnote[^1] and another[^note].

![alt text](img/a.png "Image title") and <https://auto.example/x> and <me@example.org>.

```python
def f(x):
    return x < 1 and "&"
```

    indented code

> quote with [ref link][r]
> - item
> - item 2

1. one
2. two
   - nested

[r]: /abs/path "Ref title"

<div class="note"><a href="rel/x.html">raw</a> <img src="/i.png" alt="i"></div>

[mail](mailto:a@b.c) [frag](#sec) [q](?a=1&b=2) [proto](//cdn.example/x.js)

[^1]: The note.
[^note]: Named *note*.
"""

# What the renderer wrote before the allow-list, byte for byte.
ORDINARY_HTML = """\
<h1>Title <em>em</em> <strong>strong</strong> <s>gone</s></h1>
<table>
<thead>
<tr>
<th style="text-align:left">left</th>
<th style="text-align:center">center</th>
<th style="text-align:right">right</th>
</tr>
</thead>
<tbody>
<tr>
<td style="text-align:left">a</td>
<td style="text-align:center"><code>b</code></td>
<td style="text-align:right"><a href="https://example.com/posts/c/" title="C title">c</a></td>
</tr>
</tbody>
</table>
<p>Text with a footnote<sup class="footnote-ref"><a href="https://example.com/posts/harbour/#fn1" \
id="fnref1">[1]</a></sup> and another<sup class="footnote-ref">\
<a href="https://example.com/posts/harbour/#fn2" id="fnref2">[2]</a></sup>.</p>
<p><img src="https://example.com/posts/harbour/img/a.png" alt="alt text" title="Image title"> and \
<a href="https://auto.example/x">https://auto.example/x</a> and \
<a href="mailto:me@example.org">me@example.org</a>.</p>
<pre><code class="language-python">def f(x):
    return x &lt; 1 and "&amp;"
</code></pre>
<pre><code>indented code
</code></pre>
<blockquote>
<p>quote with <a href="https://example.com/abs/path" title="Ref title">ref link</a></p>
<ul>
<li>item</li>
<li>item 2</li>
</ul>
</blockquote>
<ol>
<li>one</li>
<li>two
<ul>
<li>nested</li>
</ul>
</li>
</ol>
<div class="note"><a href="https://example.com/posts/harbour/rel/x.html">raw</a> \
<img src="https://example.com/i.png" alt="i"></div>
<p><a href="mailto:a@b.c">mail</a> <a href="https://example.com/posts/harbour/#sec">frag</a> \
<a href="https://example.com/posts/harbour/?a=1&amp;b=2">q</a> <a href="https://cdn.example/x.js">proto</a></p>
<hr class="footnotes-sep">
<section class="footnotes">
<ol class="footnotes-list">
<li id="fn1" class="footnote-item"><p>The note. <a href="https://example.com/posts/harbour/#fnref1" \
class="footnote-backref">↩︎</a></p>
</li>
<li id="fn2" class="footnote-item"><p>Named <em>note</em>. \
<a href="https://example.com/posts/harbour/#fnref2" class="footnote-backref">↩︎</a></p>
</li>
</ol>
</section>
"""


def test_ordinary_markdown_is_unchanged() -> None:
    assert render(ORDINARY_MARKDOWN, BASE).html == ORDINARY_HTML


def test_stray_document_tags_lose_no_text() -> None:
    # libxml2 dropped all that followed `</html>`, and started a second body at `</body>`.
    html = render("<p>one</p>\n</html>\n<p>two</p>\n</body>\n<p>three</p>\n", BASE).html
    assert [part for part in ("one", "two", "three") if part in html] == ["one", "two", "three"]


# ---------------------------------------------------------------------------------------
# 3. The rendering cost of one post is bounded


CAP = 20_000


def test_a_pathological_body_at_the_cap_is_rendered_once(
    write_post: WritePost, make_settings: MakeSettings, parses: list[int]
) -> None:
    # "![" repeated costs markdown-it about 17 µs a character; the cap bounds the text
    # it is given, and one post is parsed once per build.
    write_post("brackets.md", post_text(body="![" * (CAP // 2)))
    built = build(make_settings(max_render_bytes=CAP))
    check_documents(built.documents)
    assert built.problems == ()
    assert parses == [CAP]


def test_a_body_over_the_cap_keeps_its_summary_and_link(
    write_post: WritePost, make_settings: MakeSettings, parses: list[int]
) -> None:
    body = "![" * (CAP // 2) + "!"
    write_post("described.md", post_text(title="Described", body=body))
    intro = "A first paragraph that is the summary.\n\n"
    write_post("plain.md", post_text(title="Plain", date="1602734000", description=None, body=intro + body))
    built = build(make_settings(max_render_bytes=CAP))
    rss, _, feed = check_documents(built.documents)
    assert [str(problem) for problem in built.problems] == [
        f"described.md: content: left out of the feeds, the entry keeps its summary: {CAP + 1} bytes, "
        f"over max_render_bytes ({CAP})",
        f"plain.md: content: left out of the feeds, the entry keeps its summary: {CAP + len(intro) + 1} "
        f"bytes, over max_render_bytes ({CAP})",
    ]
    assert (built.used, built.skipped) == (2, 0)
    assert contents(built)["rss"] == ["", ""]
    assert [entry.summary for entry in rss.entries] == [
        "Fishing boats, gulls and a cup of tea.",
        "A first paragraph that is the summary.",
    ]
    assert [entry.link for entry in rss.entries] == [
        "https://example.com/posts/described/",
        "https://example.com/posts/plain/",
    ]
    assert [item["content_text"] for item in feed["items"]] == [entry.summary for entry in rss.entries]
    # The summary's paragraph alone, never the whole body, once: when the post is parsed.
    assert parses == [len(intro) - 2]
    assert max(parses) <= SUMMARY_SOURCE_CHARS


def test_the_first_paragraph_of_a_huge_body_reads_a_bounded_prefix(
    write_post: WritePost, make_settings: MakeSettings, parses: list[int]
) -> None:
    write_post("brackets.md", post_text(description=None, body="![" * CAP))
    built = build(make_settings(max_render_bytes=CAP))
    assert built.items[0].summary == "![" * 150 + "…"  # the paragraph's text, shortened
    assert parses == [SUMMARY_SOURCE_CHARS]  # at the parse, and never again for the entry


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "lots"])
def test_max_render_bytes_is_a_positive_whole_number(make_settings: MakeSettings, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(max_render_bytes=value)
    assert raised.value.setting == "max_render_bytes"


def test_max_render_bytes_default(settings: Settings) -> None:
    assert settings.max_render_bytes == 500_000
