"""Benchmark markdown-it-py against mistune 3 for rendering blog posts.

What it measures
    * Throughput: 1,000 synthetic ~3 KB blog posts (seeded, reproducible) are
      rendered by each renderer: one warm-up pass, then 5 timed passes
      (``time.perf_counter``, timed passes interleaved between the renderers).
      Reports median and min seconds per pass and ms per post.
    * Memory: peak traced allocation (``tracemalloc``) during one extra,
      untimed pass; each HTML result is discarded as soon as it is produced.
    * Conformance: a handful of CommonMark edge cases, compared with the HTML
      the CommonMark spec prescribes (exactly, and after a light normalisation
      that ignores pure serialisation differences such as ``<br />`` vs ``<br>``
      or ``&copy;`` vs ``©``).

How to run (from the repository root; takes well under 2 minutes)::

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/markdown_renderers.py

Requires markdown-it-py, mdit-py-plugins and mistune 3.x (the `bench` extra).
"""

from __future__ import annotations

import gc
import html
import platform
import random
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib.metadata import version

import mistune
from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin

Renderer = Callable[[str], object]

SEED = 1234
POST_COUNT = 1_000
TIMED_RUNS = 5
TARGET_POST_CHARS = (2_800, 3_200)

# --------------------------------------------------------------------------
# Synthetic corpus
# --------------------------------------------------------------------------

SYLLABLES = (*(c + v for c in "bdgklmnprstvz" for v in "aeiou"), "ion", "el", "ax")


class PostGenerator:
    """Builds pseudo-random blog-post Markdown from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vocabulary = [self._make_word() for _ in range(600)]
        self.slugs = ["-".join(self._words(2)) for _ in range(80)]
        # Per-post feature flags, set in ``post()``.
        self.with_strike = False

    # -- words and inline content ------------------------------------------

    def _make_word(self) -> str:
        return "".join(self.rng.choices(SYLLABLES, k=self.rng.randint(1, 3)))

    def _words(self, count: int) -> list[str]:
        return self.rng.choices(self.vocabulary, k=count)

    def _phrase(self, low: int = 1, high: int = 3) -> str:
        return " ".join(self._words(self.rng.randint(low, high)))

    def _url(self) -> str:
        rng = self.rng
        slug = rng.choice(self.slugs)
        kind = rng.random()
        if kind < 0.45:
            host = rng.choice(["example.com", "docs.example.org", "blog.test"])
            return f"https://{host}/{slug}?ref={rng.randint(1, 99)}"
        if kind < 0.75:
            return f"/posts/{rng.randint(2015, 2025)}/{slug}/"
        return f"../{slug}.html#{rng.choice(self.vocabulary)}"

    def _inline_token(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.80:
            return rng.choice(self.vocabulary)
        if roll < 0.84:
            return f"*{self._phrase()}*"
        if roll < 0.87:
            return f"**{self._phrase()}**"
        if roll < 0.89:
            return f"_{self._phrase(1, 2)}_"
        if roll < 0.92:
            return f"`{rng.choice(self.vocabulary)}({rng.randint(0, 9)})`"
        if roll < 0.955:
            return f"[{self._phrase()}]({self._url()})"
        if roll < 0.965:
            alt = self._phrase(2, 4)
            return f'![{alt}](/img/{rng.choice(self.slugs)}.png "{alt}")'
        if roll < 0.98 and self.with_strike:
            return f"~~{self._phrase()}~~"
        return rng.choice(self.vocabulary) + rng.choice([",", ";", " &", " -"])

    def _sentence(self) -> list[str]:
        tokens = [self._inline_token() for _ in range(self.rng.randint(6, 16))]
        tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
        tokens[-1] += self.rng.choice([".", ".", ".", "?", "!"])
        return tokens

    @staticmethod
    def _wrap(tokens: Sequence[str], width: int = 78) -> list[str]:
        """Soft-wrap tokens into lines, never splitting a token."""
        lines: list[str] = []
        current = ""
        for token in tokens:
            if current and len(current) + 1 + len(token) > width:
                lines.append(current)
                current = token
            else:
                current = f"{current} {token}" if current else token
        if current:
            lines.append(current)
        return lines

    # -- blocks -------------------------------------------------------------

    def paragraph(self, footnote: str | None = None) -> str:
        tokens: list[str] = []
        for _ in range(self.rng.randint(2, 5)):
            tokens.extend(self._sentence())
        if footnote is not None:
            position = self.rng.randrange(len(tokens))
            tokens[position] += f"[^{footnote}]"
        return "\n".join(self._wrap(tokens))

    def heading(self) -> str:
        level = self.rng.choice(["##", "##", "###"])
        return f"{level} {self._phrase(2, 5).capitalize()}"

    def bullet_list(self) -> str:
        lines: list[str] = []
        for _ in range(self.rng.randint(3, 6)):
            lines.append("- " + " ".join(self._sentence()))
            if self.rng.random() < 0.2:
                lines.append("  - " + " ".join(self._sentence()[:6]))
        return "\n".join(lines)

    def numbered_list(self) -> str:
        count = self.rng.randint(3, 6)
        return "\n".join(f"{n}. " + " ".join(self._sentence()) for n in range(1, count + 1))

    def blockquote(self) -> str:
        tokens = self._sentence() + self._sentence()
        return "\n".join(f"> {line}" for line in self._wrap(tokens, 72))

    def code_block(self) -> str:
        rng = self.rng
        name, arg = rng.choice(self.vocabulary), rng.choice(self.vocabulary)
        body = [f"def {name}({arg}: int) -> bool:"]
        for _ in range(rng.randint(3, 8)):
            var = rng.choice(self.vocabulary)
            body.append(f"    {var} = {arg} * {rng.randint(2, 99)} & 0xFF  # <{var}>")
        body.append(f"    return {arg} < {rng.randint(1, 500)}")
        return "```python\n" + "\n".join(body) + "\n```"

    def table(self) -> str:
        rng = self.rng
        columns = rng.randint(3, 4)
        header = [self._phrase(1, 2).capitalize() for _ in range(columns)]
        align = [rng.choice([":---", "---:", ":---:", "---"]) for _ in range(columns)]
        rows = [[self._inline_token() for _ in range(columns)] for _ in range(rng.randint(3, 6))]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, align, *rows])

    def post(self) -> str:
        rng = self.rng
        self.with_strike = rng.random() < 0.35
        footnotes = rng.randint(1, 3) if rng.random() < 0.3 else 0

        special: list[str] = [self.paragraph(str(n)) for n in range(1, footnotes + 1)]
        if rng.random() < 0.4:
            special.append(self.code_block())
        if rng.random() < 0.3:
            special.append(self.table())

        fillers: tuple[tuple[Callable[[], str], int], ...] = (
            (self.paragraph, 10),
            (self.heading, 3),
            (self.bullet_list, 2),
            (self.numbered_list, 1),
            (self.blockquote, 1),
        )
        makers = [maker for maker, _ in fillers]
        weights = [weight for _, weight in fillers]

        target = rng.randint(*TARGET_POST_CHARS)
        blocks = [f"# {self._phrase(2, 6).capitalize()}", self.paragraph()]
        size = sum(len(b) + 2 for b in blocks + special)
        while size < target:
            block = rng.choices(makers, weights)[0]()
            blocks.append(block)
            size += len(block) + 2
        for block in special:
            blocks.insert(rng.randint(2, len(blocks)), block)
        for n in range(1, footnotes + 1):
            blocks.append(f"[^{n}]: " + " ".join(self._sentence()))
        return "\n\n".join(blocks) + "\n"


def generate_posts(count: int = POST_COUNT, seed: int = SEED) -> list[str]:
    generator = PostGenerator(random.Random(seed))
    return [generator.post() for _ in range(count)]


# --------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------


def build_renderers() -> dict[str, Renderer]:
    markdown_it = MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(footnote_plugin)
    mistune_md = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "footnotes"])
    return {"markdown-it-py": markdown_it.render, "mistune": mistune_md}


# --------------------------------------------------------------------------
# Speed and memory
# --------------------------------------------------------------------------


@dataclass
class SpeedResult:
    name: str
    runs: list[float]
    peak_bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best(self) -> float:
        return min(self.runs)


def render_all(render: Renderer, posts: Sequence[str]) -> None:
    for post in posts:
        render(post)


def timed_pass(render: Renderer, posts: Sequence[str]) -> float:
    gc.collect()
    start = time.perf_counter()
    render_all(render, posts)
    return time.perf_counter() - start


def peak_traced_bytes(render: Renderer, posts: Sequence[str]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        render_all(render, posts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - baseline


def benchmark(renderers: dict[str, Renderer], posts: Sequence[str]) -> list[SpeedResult]:
    for render in renderers.values():
        render_all(render, posts)  # warm-up: caches, lazily compiled regexes
    runs: dict[str, list[float]] = {name: [] for name in renderers}
    for _ in range(TIMED_RUNS):
        for name, render in renderers.items():
            runs[name].append(timed_pass(render, posts))
    return [
        SpeedResult(name, runs[name], peak_traced_bytes(render, posts)) for name, render in renderers.items()
    ]


def print_speed_table(results: Sequence[SpeedResult], post_count: int) -> None:
    print(
        f"| renderer | median s ({post_count:,} posts) | min s | ms/post (median) | peak MiB (tracemalloc) |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.name} | {r.median:.3f} | {r.best:.3f} "
            f"| {r.median / post_count * 1000:.3f} | {r.peak_bytes / 2**20:.2f} |"
        )
    by_name = {r.name: r for r in results}
    mdit, mist = by_name["markdown-it-py"], by_name["mistune"]
    print(
        f"\nratio mistune / markdown-it-py: median {mist.median / mdit.median:.2f}x, "
        f"min {mist.best / mdit.best:.2f}x, peak memory "
        f"{mist.peak_bytes / mdit.peak_bytes:.2f}x  (< 1 means mistune is lower)"
    )
    print(
        "timed runs (s): " + "; ".join(f"{r.name}: " + ", ".join(f"{t:.3f}" for t in r.runs) for r in results)
    )


FEATURE_PATTERNS = {
    "table": re.compile(r"<table>"),
    "strike": re.compile(r"<(?:s|del)>"),
    "footnote": re.compile(r'class="footnotes'),
    "code block": re.compile(r"<pre><code"),
    "blockquote": re.compile(r"<blockquote>"),
    "img": re.compile(r"<img "),
    "literal [^n]": re.compile(r"\[\^\d+\]"),
}


def print_corpus_summary(posts: Sequence[str], renderers: dict[str, Renderer]) -> None:
    sizes = [len(p.encode()) for p in posts]
    print(
        f"corpus: {len(posts):,} posts, seed {SEED}, {sum(sizes) / 1024:.0f} KiB total, "
        f"mean {statistics.mean(sizes):.0f} B, min {min(sizes)} B, max {max(sizes)} B"
    )
    print("posts whose rendered HTML contains each feature (sanity check):")
    print("| renderer | " + " | ".join(FEATURE_PATTERNS) + " | HTML KiB |")
    print("|---|" + "---:|" * (len(FEATURE_PATTERNS) + 1))
    for name, render in renderers.items():
        outputs = [str(render(p)) for p in posts]
        counts = [sum(1 for out in outputs if pattern.search(out)) for pattern in FEATURE_PATTERNS.values()]
        total = sum(len(out.encode()) for out in outputs) / 1024
        print(f"| {name} | " + " | ".join(map(str, counts)) + f" | {total:.0f} |")


# --------------------------------------------------------------------------
# CommonMark conformance spot checks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeCase:
    name: str
    markdown: str
    expected: str  # HTML as given by the CommonMark spec (0.31.2)


EDGE_CASES: tuple[EdgeCase, ...] = (
    EdgeCase("intraword * emphasis", "*foo*bar\n", "<p><em>foo</em>bar</p>\n"),
    EdgeCase("intraword _ is literal", "_foo_bar_\n", "<p><em>foo_bar</em></p>\n"),
    EdgeCase(
        "nested emphasis ***a** b*",
        "***a** b*\n",
        "<p><em><strong>a</strong> b</em></p>\n",
    ),
    EdgeCase("rule of three *foo**bar*", "*foo**bar*\n", "<p><em>foo**bar</em></p>\n"),
    EdgeCase(
        "list item interrupts paragraph",
        "Foo\n- bar\n- baz\n",
        "<p>Foo</p>\n<ul>\n<li>bar</li>\n<li>baz</li>\n</ul>\n",
    ),
    EdgeCase(
        "'14.' cannot interrupt paragraph",
        "The number of windows in my house is\n14.  The number of doors is 6.\n",
        "<p>The number of windows in my house is\n14.  The number of doors is 6.</p>\n",
    ),
    EdgeCase("<div> raw HTML block", "<div>\n*hello*\n</div>\n", "<div>\n*hello*\n</div>\n"),
    EdgeCase(
        "<div> block ends at blank line",
        "<div>\n\n*Markdown*\n\n</div>\n",
        "<div>\n<p><em>Markdown</em></p>\n</div>\n",
    ),
    EdgeCase(
        "link ref def, case-folded label",
        '[FOO]: /url "title"\n\n[Foo]\n',
        '<p><a href="/url" title="title">Foo</a></p>\n',
    ),
    EdgeCase(
        "link ref def over 3 lines",
        "   [foo]: \n      /url  \n           'the title'  \n\n[foo]\n",
        '<p><a href="/url" title="the title">foo</a></p>\n',
    ),
    EdgeCase("hard break (2 spaces)", "foo  \nbaz\n", "<p>foo<br />\nbaz</p>\n"),
    EdgeCase(
        "backslash escapes",
        "\\*not emphasized*\n\\<br/> not a tag\n\\[not a link](/foo)\n"
        "\\`not code`\n1\\. not a list\n\\* not a list\n\\# not a heading\n"
        '\\[foo]: /url "not a reference"\n\\&ouml; not a character entity\n',
        "<p>*not emphasized*\n&lt;br/&gt; not a tag\n[not a link](/foo)\n"
        "`not code`\n1. not a list\n* not a list\n# not a heading\n"
        "[foo]: /url &quot;not a reference&quot;\n&amp;ouml; not a character entity</p>\n",
    ),
    EdgeCase(
        "entities &copy; &#35; bogus",
        "&copy; 2024 &amp; &#35;1 &ThisIsNotDefined;\n",
        "<p>© 2024 &amp; #1 &amp;ThisIsNotDefined;</p>\n",
    ),
    EdgeCase("code span with backtick", "`` foo ` bar ``\n", "<p><code>foo ` bar</code></p>\n"),
    EdgeCase(
        "lazy blockquote continuation",
        "> foo\nbar\n",
        "<blockquote>\n<p>foo\nbar</p>\n</blockquote>\n",
    ),
    EdgeCase(
        "<...> link destination w/ space",
        "[link](</my uri>)\n",
        '<p><a href="/my%20uri">link</a></p>\n',
    ),
)

BLOCK_TAGS = (
    "address|article|aside|blockquote|div|dl|dd|dt|figure|footer|h[1-6]|header|hr|"
    "li|ol|p|pre|section|table|thead|tbody|tfoot|tr|th|td|ul"
)
_AROUND_BLOCK_TAG = re.compile(rf"\s*(</?(?:{BLOCK_TAGS})\b[^>]*>)\s*")


class _Canonicaliser(HTMLParser):
    """Re-serialises HTML so that equivalent markup compares equal.

    Character references are decoded and text is re-escaped minimally,
    attributes are sorted, ``<br />`` becomes ``<br>``, runs of whitespace
    outside ``<pre>`` collapse to one space, and whitespace next to
    block-level tags is dropped.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        rendered = "".join(f' {key}="{html.escape(value or "", quote=True)}"' for key, value in sorted(attrs))
        self.parts.append(f"<{tag}{rendered}>")
        self.pre_depth += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.parts.append(f"</{tag}>")
        self.pre_depth -= tag == "pre"

    def handle_data(self, data: str) -> None:
        text = html.escape(data, quote=False)
        self.parts.append(text if self.pre_depth else re.sub(r"\s+", " ", text))

    def handle_comment(self, data: str) -> None:
        self.parts.append(f"<!--{data}-->")


def canonical_html(markup: str) -> str:
    parser = _Canonicaliser()
    parser.feed(markup)
    parser.close()
    return _AROUND_BLOCK_TAG.sub(r"\1", "".join(parser.parts)).strip()


def verdict(output: str, expected: str) -> str:
    if output == expected:
        return "PASS"
    if canonical_html(output) == canonical_html(expected):
        return "PASS~"
    return "FAIL"


def check_edge_cases(renderers: dict[str, Renderer]) -> None:
    names = list(renderers)
    summary: list[tuple[str, list[str]]] = []
    for case in EDGE_CASES:
        print(f"\n### {case.name}")
        print(f"markdown : {case.markdown!r}")
        print(f"expected : {case.expected!r}")
        verdicts: list[str] = []
        for name, render in renderers.items():
            output = str(render(case.markdown))
            result = verdict(output, case.expected)
            verdicts.append(result)
            print(f"{name:<15}: {output!r}  -> {result}")
        summary.append((case.name, verdicts))

    print("\n| edge case | " + " | ".join(names) + " |")
    print("|---|" + ":---:|" * len(names))
    for case_name, verdicts in summary:
        print(f"| {case_name} | " + " | ".join(verdicts) + " |")
    totals = [sum(verdicts[i] != "FAIL" for _, verdicts in summary) for i in range(len(names))]
    print("| **passed** | " + " | ".join(f"**{t}/{len(summary)}**" for t in totals) + " |")
    print(
        "\nPASS = byte-identical to the spec HTML; PASS~ = equivalent after "
        "normalising serialisation (entities, <br />, whitespace between blocks); "
        "FAIL = different document."
    )


@dataclass(frozen=True)
class ExtensionCheck:
    """A GFM-extension case; the HTML markup differs per renderer, so the check
    is a pattern the output must match (e.g. "the footnote reference is a link")."""

    name: str
    markdown: str
    must_match: re.Pattern[str]


FOOTNOTE_LINK = re.compile(r'<sup class="footnote-ref"[^>]*>\s*<a href="#fn')

EXTENSION_CHECKS: tuple[ExtensionCheck, ...] = (
    ExtensionCheck("footnote after '.'", "Wow.[^1]\n\n[^1]: note\n", FOOTNOTE_LINK),
    # Happens in the synthetic corpus when a sentence ending in "!" carries the reference.
    ExtensionCheck("footnote after '!'", "Wow![^1]\n\n[^1]: note\n", FOOTNOTE_LINK),
    ExtensionCheck("strikethrough", "a ~~b~~ c\n", re.compile(r"<(s|del)>b</\1>")),
    ExtensionCheck(
        "table cell with escaped pipe",
        "| a | b |\n|---|---|\n| x \\| y | `c` |\n",
        re.compile(r"<td>x \| y</td>\s*<td><code>c</code></td>"),
    ),
)


def check_extensions(renderers: dict[str, Renderer]) -> None:
    print("\n| extension case | " + " | ".join(renderers) + " |")
    print("|---|" + ":---:|" * len(renderers))
    for case in EXTENSION_CHECKS:
        verdicts = [
            "PASS" if case.must_match.search(str(render(case.markdown))) else "FAIL"
            for render in renderers.values()
        ]
        source = repr(case.markdown).replace("|", "\\|")
        print(f"| {case.name}: `{source}` | " + " | ".join(verdicts) + " |")


# --------------------------------------------------------------------------


def main() -> None:
    started = time.perf_counter()
    print(
        f"Python {platform.python_version()} | markdown-it-py {version('markdown-it-py')}"
        f" | mdit-py-plugins {version('mdit-py-plugins')} | mistune {version('mistune')}"
    )
    posts = generate_posts()
    renderers = build_renderers()
    print_corpus_summary(posts, renderers)

    print(f"\n## Speed: warm-up + {TIMED_RUNS} timed passes over {len(posts):,} posts\n")
    print_speed_table(benchmark(renderers, posts), len(posts))

    print("\n## CommonMark edge cases")
    check_edge_cases(renderers)

    print("\n## GFM extensions (table, strikethrough, footnotes)")
    check_extensions(renderers)
    print(f"\ntotal wall time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
