"""How long one post's body takes to render: pathological Markdown against ordinary text.

Run from the repository root::

    .venv/bin/python -m bench.pathological [--sizes 20000,80000,320000,1280000,4900000]

For each size it times, for `"![" * n` (markdown-it's slowest input we know: every `[`
opens a link label it scans ahead for) and for ordinary posts' text of the same size
(bodies from bench.corpus, joined):

- markdown-it: parsing and rendering to HTML, markdown-it-py alone;
- allow-list: `feeds.markdown.safe_html` over that HTML (link-absolutising and
  sanitising, one lxml pass);
- render: `feeds.markdown.render`, the two together, as every build did before
  max_render_bytes (skipped above --render-limit, where it takes minutes);
- make_item: `feeds.build.make_item` with the default max_render_bytes, what one such
  post costs a build now.

Each figure is the median of --runs runs (one run for timings over 5 s).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from bench.corpus import new_post
from feeds.build import make_item
from feeds.config import Settings
from feeds.markdown import _MARKDOWN, render, safe_html
from feeds.posts import parse_post, post_body

BASE_URL = "https://example.com/posts/p/"


def ordinary_text(size: int) -> str:
    """Bodies of generated posts, joined with blank lines, cut to `size` characters."""
    parts: list[str] = []
    length, seed = 0, 1
    while length < size:
        body = post_body(new_post(f"Post {seed}", 1_600_000_000 + seed, seed).encode())
        parts.append(body)
        length += len(body) + 2
        seed += 1
    return "\n\n".join(parts)[:size]


def timed(action: Callable[[], object], runs: int) -> float:
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        results.append(time.perf_counter() - start)
        if results[-1] > 5:
            break
    return statistics.median(results)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,80000,320000,1280000,4900000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--render-limit", type=int, default=400_000, help="largest size rendered whole")
    args = parser.parse_args(argv)
    settings = Settings()
    head = b"---\ntitle: Bench\ndate: 2025-06-01\n---\n"
    post = parse_post("bench.md", head, settings)
    print(f"max_render_bytes (default): {settings.max_render_bytes}")
    columns = ("markdown-it", "allow-list", "render", "us/char", "make_item")
    print(f"{'body':<10} {'bytes':>9} " + " ".join(f"{name:>11}" for name in columns))
    for size in (int(part) for part in args.sizes.split(",")):
        for kind, body in (("![", "![" * (size // 2)), ("ordinary", ordinary_text(size))):
            if size <= args.render_limit:
                html = _MARKDOWN.render(body)
                parse = f"{timed(lambda body=body: _MARKDOWN.render(body), args.runs):.3f} s"
                allow = f"{timed(lambda html=html: safe_html(html, BASE_URL), args.runs):.3f} s"
                whole = timed(lambda body=body: render(body, BASE_URL), args.runs)
                rendered, per_char = f"{whole:.3f} s", f"{whole / len(body) * 1e6:.1f}"
            else:
                parse = allow = rendered = per_char = "-"
            capped = timed(lambda body=body: make_item(post, body, settings.max_render_bytes), args.runs)
            cells = (parse, allow, rendered, per_char, f"{capped:.3f} s")
            print(f"{kind:<10} {len(body.encode()):>9,} " + " ".join(f"{cell:>11}" for cell in cells))


if __name__ == "__main__":
    main()
