"""From posts to feed bytes: select, render the newest posts of each feed, write RSS,
Atom and JSON Feed for the site, for each section, tag, category and author, RFC 5005
archive pages (whose entries are summarized from the head of the body, never rendered),
and the OPML list of every feed.

Pure: the same posts, settings and `now` always give byte-identical documents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources

from feeds.config import Settings
from feeds.errors import Problem
from feeds.feedpage import PAGE_FILE, Snippets, feed_page
from feeds.jsonfeed import Fragments, json_feed
from feeds.markdown import render
from feeds.opml import OPML_PATH, opml
from feeds.parallel import Batch
from feeds.posts import Author, Post
from feeds.select import select
from feeds.taxonomy import HEADINGS, SECTIONS, SectionGroups, Term, TermGroups
from feeds.text import shorten
from feeds.xmlfeeds import NO_PAGING, STYLESHEET_PATH, Channel, Entries, Item, Paging, atom, rss

FEED_FILES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}

# An archive page with a newer page after it never changes until an old post is edited,
# so readers and proxies may keep it for long (RFC 5005 §4: archives are stable). The
# newest page gains its next-archive link when the next page fills: until then it gets
# the max_age setting, like the main feeds.
ARCHIVE_MAX_AGE = 7 * 24 * 3600
MAX_CONTENT_BYTES = 9_000_000  # libxml2 refuses a text node over 10,000,000 bytes
# A summary comes from the first paragraph of this many characters of the body, so that
# posts never rendered (archived, too large, summary mode) cost little: markdown-it's
# worst case is about 20 µs a character.
SUMMARY_SOURCE_CHARS = 8192

# memo((path, inputs), make) gives the document at `path`: the bytes made before when
# `inputs` equal those it was made from (the very same object, which the publisher
# skips), else make(). With settings fixed, the inputs determine the bytes: the posts
# or items listed and what else the document shows (a term's name, the paging).
Memo = Callable[[tuple[str, Hashable], Callable[[], bytes]], bytes]


def no_memo(key: tuple[str, Hashable], make: Callable[[], bytes]) -> bytes:
    return make()


def always_fresh(key: tuple[str, Hashable]) -> bool:
    return True


class BuildState:
    """What a build leaves for the next one: every item's RSS and Atom entry, written
    once (`Entries`), its JSON Feed text, encoded once (`Fragments`), its line of a
    feed's page (`Snippets`), and the sections, tags, categories and authors as last
    grouped (`SectionGroups`, `TermGroups`). A build changes the state it is given;
    `carried()` is the state to give the next build, so that a build that is abandoned
    leaves the last one as it was."""

    def __init__(
        self,
        entries: Entries | None = None,
        terms: TermGroups | None = None,
        json: Fragments | None = None,
        pages: Snippets | None = None,
        sections: SectionGroups | None = None,
    ) -> None:
        self.entries = entries or Entries()
        self.terms = terms or TermGroups()
        self.json = json or Fragments()
        self.pages = pages or Snippets()
        self.sections = sections or SectionGroups()

    def carried(self) -> BuildState:
        return BuildState(
            self.entries.carried(),
            self.terms.carried(),
            self.json.carried(),
            self.pages.carried(),
            self.sections.carried(),
        )


@dataclass(frozen=True)
class FeedDocuments:
    rss: bytes
    atom: bytes
    json: bytes


@dataclass(frozen=True)
class Output:
    """One file of a build: where it goes below the output folder, its bytes and how
    long it may be cached (its Last-Modified is when the watcher first published them)."""

    path: str  # e.g. "rss.xml", "tags/c++/atom.xml", "notes/feed.json", "archive/3/rss.xml"
    body: bytes
    max_age: int | None = None  # None: the max_age setting


@dataclass(frozen=True)
class Build:
    """One complete result of the pipeline: the documents and how they came to be."""

    documents: FeedDocuments  # the site's own three feeds
    outputs: tuple[Output, ...]  # every file, the three above included
    items: tuple[Item, ...]
    terms: tuple[Term, ...]  # those with feeds: sections, tags, categories, authors
    files_read: int
    used: int
    held_back: int
    problems: tuple[Problem, ...]  # of posts left out, and of posts that lost their content
    next_release: dt.datetime | None
    # What the output budgets left out (max_term_entry_bytes, max_term_feeds,
    # max_term_bytes), and folders that get no section feeds, one line each; the posts
    # themselves are all used.
    cuts: tuple[str, ...] = ()
    degraded: frozenset[str] = frozenset()  # posts in the feeds without their content, by path

    @property
    def skipped(self) -> int:
        """How many files were left out (a post that only lost its content is not)."""
        return len({problem.path for problem in self.problems} - self.degraded)

    def reported(self, problem: Problem) -> str:
        """`problem` as a log line says it: a post that only lost its content is used."""
        return f"{'lost content' if problem.path in self.degraded else 'skipped'} {problem}"


def make_item(post: Post, body: str, max_render_bytes: int = Settings.max_render_bytes) -> Item:
    """`post` with its Markdown `body` rendered and its summary decided.

    A body over `max_render_bytes` is not rendered (markdown-it takes seconds on some
    texts of a few hundred KB), and HTML that would pass libxml2's 10 MB limit on one
    text node once escaped into XML, which readers refuse, is left out: either way the
    entry keeps its summary and its link, and says why in a problem.
    """
    size = len(body.encode())
    if size > max_render_bytes:
        summary = summary_of(post)
        reason = f"{size} bytes, over max_render_bytes ({max_render_bytes})"
        return without_content(post, summary, reason)
    rendered = render(body, post.permalink)
    summary = summary_of(post)
    if _escaped_size(rendered.html) > MAX_CONTENT_BYTES:
        reason = f"the HTML is over {MAX_CONTENT_BYTES} bytes once escaped into XML"
        return without_content(post, summary, reason)
    return Item(post, rendered.html, summary)


def summary_item(post: Post) -> Item:
    """`post`'s entry with its summary and no text (the `content = "summary"` setting):
    nothing is rendered, and no file is read again."""
    return Item(post, "", summary_of(post))


def summary_of(post: Post) -> str:
    """The summary of `post` wherever it appears (main feeds, archive, either content
    mode): its own, else the lead its parse took from the body (`Post.lead`), else its
    title."""
    return post.summary or post.lead or post.title


def without_content(post: Post, summary: str, reason: str) -> Item:
    """The entry of a post whose body cannot be shown: its summary and link only."""
    problem = Problem(post.source, "content", f"left out of the feeds, the entry keeps its summary: {reason}")
    return Item(post, "", summary, (problem,))


def _escaped_size(html: str) -> int:
    """The UTF-8 size of `html` as XML text: & becomes &amp;, < and > become &lt;, &gt;."""
    return len(html.encode()) + 4 * html.count("&") + 3 * (html.count("<") + html.count(">"))


def site_channel(settings: Settings) -> Channel:
    return _channel(settings, "/", settings.title, settings.description)


_DESCRIPTIONS = {"tags": "tagged", "categories": "in the category", "authors": "by", SECTIONS: "in"}


def term_channel(settings: Settings, term: Term) -> Channel:
    what = _DESCRIPTIONS[term.kind]
    return _channel(settings, term.path, f"{settings.title}: {term.name}", f"Posts {what} “{term.name}”")


def _channel(settings: Settings, prefix: str, title: str, description: str) -> Channel:
    return Channel(
        id=settings.url(prefix),
        title=title,
        description=description,
        home_url=settings.url("/"),
        language=settings.language,
        author=Author(settings.author_name, settings.author_email),
        rss_url=settings.url(prefix + FEED_FILES["rss"]),
        atom_url=settings.url(prefix + FEED_FILES["atom"]),
        json_url=settings.url(prefix + FEED_FILES["json"]),
        hub=settings.websub_hub,
        icon=settings.icon,
        logo=settings.logo,
    )


def build(
    posts: Iterable[Post],
    problems: Iterable[Problem],
    files_read: int,
    now: dt.datetime,
    settings: Settings,
    itemize: Callable[[Post], Item],
    summarize: Callable[[Post], str],
    memo: Memo = no_memo,
    pages: bool = False,
    site_only: bool = False,
    state: BuildState | None = None,
    fresh: Callable[[tuple[str, Hashable]], bool] = always_fresh,
) -> Build:
    """Builds every document; `itemize` makes the item of a post that reaches a feed
    (reading its body, or reusing an item rendered before), `summarize` gives the
    summary of an archived post without rendering its body (`summary_item`); both must
    depend on the post alone, since `memo` may return the bytes of a document made before
    from the same posts (see `Memo`). With `pages`, each folder of
    feeds also gets the HTML page that the service shows browsers (`feeds.feedpage`);
    `feeds build` leaves them out, since a static host cannot choose them. With
    `site_only`, only the site's own feeds, their page and feed.xsl: what a cold start
    publishes first, before the rest (the archive, sections, terms and the OPML list).
    `state` is what an earlier build left for this one (see `BuildState`; a fresh one
    when None): it changes the cost of the build, never its bytes. `fresh(key)` says
    whether `memo` would make the document of `key` anew: the archive pages it names are
    made in a `parallel.Batch`, meanwhile."""
    state = state or BuildState()
    entries = state.entries
    selection = select(posts, now)
    limit = settings.item_limit
    item_problems: set[Problem] = set()

    def noted(post: Post) -> Item:
        item = itemize(post)
        item_problems.update(item.problems)
        return item

    items = tuple(noted(post) for post in selection.posts[:limit])
    archive = archive_pages(selection.posts, limit)
    channel = site_channel(settings)
    inputs = (items, len(archive))  # the newest archive page is linked from the site feeds
    site = FeedDocuments(
        rss=memo(
            ("rss.xml", inputs),
            lambda: rss(channel, items, _latest_archive(settings, len(archive), "rss"), entries),
        ),
        atom=memo(
            ("atom.xml", inputs),
            lambda: atom(channel, items, _latest_archive(settings, len(archive), "atom"), entries),
        ),
        json=memo(("feed.json", items), partial(json_feed, channel, items, state.json)),
    )
    outputs = [Output(FEED_FILES[kind], getattr(site, kind)) for kind in FEED_FILES]
    if pages:
        page = partial(feed_page, channel, items, None, state.pages)
        outputs.append(Output(PAGE_FILE, memo((PAGE_FILE, items), page)))
    outputs.append(Output(STYLESHEET_PATH.lstrip("/"), memo((STYLESHEET_PATH.lstrip("/"), ()), stylesheet)))
    if site_only:
        return Build(
            documents=site,
            outputs=tuple(outputs),
            items=items,
            terms=(),
            files_read=files_read,
            used=len(selection.posts),
            held_back=selection.held_back,
            problems=tuple(sorted([*problems, *selection.duplicates, *item_problems])),
            next_release=selection.next_release,
        )
    documents = [
        document
        for number, page in enumerate(archive, 1)
        for document in _archive_documents(settings, number, len(archive), page, summarize, pages, entries)
    ]
    to_make = [document for document in documents if fresh((document.path, document.inputs))]
    with Batch([document.make for document in to_make]) as batch:
        sections, refused = state.sections.group(selection.posts)
        for section in sections:
            section_items = tuple(noted(post) for post in section.posts[:limit])
            outputs.extend(_feeds(settings, section, section_items, memo, state))
            if pages:
                outputs.append(_page(settings, section, section_items, memo, state))
        kept, term_outputs, cuts = _term_feeds(
            settings, state.terms.group(selection.posts), noted, memo, pages, state
        )
        outputs.extend(term_outputs)
        terms = tuple(sorted((*sections, *kept), key=lambda term: (term.kind, term.key)))
        listed = tuple((term.kind, term.key, term.name) for term in terms)
        outputs.append(Output(OPML_PATH, memo((OPML_PATH, listed), partial(feed_list, settings, terms))))
        made = dict(zip((document.path for document in to_make), batch.results(), strict=True))
    for document in documents:
        body = memo((document.path, document.inputs), partial(_made, made, document))
        outputs.append(Output(document.path, body, document.max_age))
    return Build(
        documents=site,
        outputs=tuple(outputs),
        items=items,
        terms=terms,
        files_read=files_read,
        used=len(selection.posts),
        held_back=selection.held_back,
        problems=tuple(sorted([*problems, *selection.duplicates, *item_problems])),
        next_release=selection.next_release,
        cuts=(*refused, *cuts),
        degraded=frozenset(problem.path for problem in item_problems),
    )


def feed_list(settings: Settings, terms: Sequence[Term]) -> bytes:
    """The OPML list of the site's feed and every section, tag, category and author feed
    in `terms`, one RSS URL each (three formats of one feed would be three subscriptions
    to the same posts)."""
    groups = [
        (heading, [term_channel(settings, term) for term in terms if term.kind == kind])
        for kind, heading in HEADINGS.items()
    ]
    return opml(settings.title, site_channel(settings), groups)


def _feeds(
    settings: Settings, term: Term, items: tuple[Item, ...], memo: Memo, state: BuildState
) -> list[Output]:
    """The three feeds of a section, tag, category or author, listing `items`."""
    channel = term_channel(settings, term)
    writers: tuple[tuple[str, Callable[[], bytes]], ...] = (
        ("rss", partial(rss, channel, items, NO_PAGING, state.entries)),
        ("atom", partial(atom, channel, items, NO_PAGING, state.entries)),
        ("json", partial(json_feed, channel, items, state.json)),
    )
    return [
        Output(path, memo((path, (term.name, items)), write))
        for path, write in ((term.folder + FEED_FILES[kind], write) for kind, write in writers)
    ]


def _page(settings: Settings, term: Term, items: tuple[Item, ...], memo: Memo, state: BuildState) -> Output:
    """The HTML page that a browser navigating to one of `term`'s feeds is shown."""
    channel = term_channel(settings, term)
    path = term.folder + PAGE_FILE
    page = partial(feed_page, channel, items, None, state.pages)
    return Output(path, memo((path, (term.name, items)), page))


def _term_feeds(
    settings: Settings,
    terms: Sequence[Term],
    itemize: Callable[[Post], Item],
    memo: Memo,
    pages: bool,
    state: BuildState,
) -> tuple[tuple[Term, ...], list[Output], tuple[str, ...]]:
    """The feeds of the tags, categories and authors that fit the budgets, the terms
    they serve (by kind and key) and what was cut. Every post may name 100 terms and 20
    authors, each a feed of its own, so one post could otherwise write gigabytes: an entry over
    max_term_entry_bytes carries a short summary here, and terms are taken by most
    posts first (ties by kind and key) until max_term_feeds or max_term_bytes would be
    passed; the rest have no feeds. Sizes come from the bytes, so the cut is the same
    for the same content. The pages (with `pages`) are not counted: the cut must not
    depend on them, and each is smaller than its feeds."""
    limit = settings.item_limit
    ranked = sorted(terms, key=lambda term: (-len(term.posts), term.kind, term.key))
    kept: list[tuple[Term, list[Output]]] = []
    total = 0
    bounded: dict[Post, Item] = {}  # a post's entry in term feeds, sized once
    shortened: dict[str, int] = {}  # source -> its entry's size, for the report
    over = ""
    for term in ranked:
        if len(kept) == settings.max_term_feeds:
            over = f"max_term_feeds ({settings.max_term_feeds})"
            break
        items = tuple(
            _term_item(post, itemize, settings.max_term_entry_bytes, bounded, shortened)
            for post in term.posts[:limit]
        )
        term_outputs = _feeds(settings, term, items, memo, state)
        size = sum(len(output.body) for output in term_outputs)
        if total + size > settings.max_term_bytes:
            over = f"max_term_bytes ({settings.max_term_bytes})"
            break
        total += size
        if pages:
            term_outputs.append(_page(settings, term, items, memo, state))
        kept.append((term, term_outputs))
    kept.sort(key=lambda pair: (pair[0].kind, pair[0].key))
    served = {post.source for term, _ in kept for post in term.posts[:limit]}
    cuts = [
        f"{source}: content: {size} bytes as XML, over max_term_entry_bytes "
        f"({settings.max_term_entry_bytes}): its tag, category and author feeds carry a short summary"
        for source, size in sorted(shortened.items())
        if source in served
    ]
    if over:
        cuts.append(
            f"tags, categories and authors: {len(terms) - len(kept)} of {len(terms)} feeds left out, "
            f"those with the fewest posts, to stay within {over}"
        )
    return tuple(term for term, _ in kept), [o for _, outputs in kept for o in outputs], tuple(cuts)


def _term_item(
    post: Post,
    itemize: Callable[[Post], Item],
    limit: int,
    bounded: dict[Post, Item],
    shortened: dict[str, int],
) -> Item:
    """`post`'s entry in a term feed: its item, or a short summary when over `limit`."""
    if post not in bounded:
        item = itemize(post)
        size = _escaped_size(item.html) + _escaped_size(item.summary)
        if size > limit:
            shortened[post.source] = size
            item = Item(post, "", shorten(item.summary))
        bounded[post] = item
    return bounded[post]


def stylesheet() -> bytes:
    """The XSLT that shows the RSS and Atom feeds as a page in a browser."""
    return (resources.files("feeds") / "static" / "feed.xsl").read_bytes()


def archive_pages(posts: Sequence[Post], size: int) -> list[tuple[Post, ...]]:
    """The complete archive pages of `posts` (given newest first): oldest first, each
    `size` posts. The newest posts that do not fill a page are all in the main feed,
    which holds the newest `size`, so following the links recovers every post."""
    oldest_first = posts[::-1]
    complete = len(oldest_first) // size
    return [tuple(oldest_first[n * size : (n + 1) * size]) for n in range(complete)]


@dataclass(frozen=True)
class _Document:
    """One archive document yet to be made: where it goes, what it is made from (its
    memo inputs), how to make it and how long it may be cached."""

    path: str
    inputs: Hashable
    make: Callable[[], bytes]
    max_age: int | None


def _made(made: dict[str, bytes], document: _Document) -> bytes:
    return made[document.path] if document.path in made else document.make()


def _archive_documents(
    settings: Settings,
    number: int,
    count: int,
    page: tuple[Post, ...],
    summarize: Callable[[Post], str],
    pages: bool,
    entries: Entries,
) -> list[_Document]:
    # Archive entries carry their summaries, not their whole text, and are never
    # rendered: rendering the whole history of a large site at every cold build would
    # cost seconds, and minutes with a few pathological bodies. The summaries are asked
    # for only when a document of the page is made: an unchanged page costs nothing.
    @cache
    def items() -> tuple[Item, ...]:
        return tuple(Item(post, "", summarize(post)) for post in reversed(page))

    # Made only when a document of the page is: at every build, an unchanged page costs
    # its memo lookups alone (there are site / item_limit pages).
    @cache
    def channel() -> Channel:
        title = f"{settings.title} (archive {number})"
        return _channel(settings, f"/archive/{number}/", title, settings.description)

    max_age = ARCHIVE_MAX_AGE if number < count else None
    inputs = (page, number < count)  # the page's posts, and whether a next page is linked
    documents = []
    for kind, write in (("rss", rss), ("atom", atom)):
        path = f"archive/{number}/{FEED_FILES[kind]}"
        make = partial(
            _archive_feed, write, channel, items, partial(_paging, settings, number, count, kind), entries
        )
        documents.append(_Document(path, inputs, make, max_age))
    if pages:
        path = f"archive/{number}/{PAGE_FILE}"
        documents.append(
            _Document(path, inputs, lambda: feed_page(channel(), items(), site_channel(settings)), max_age)
        )
    return documents


def _paging(settings: Settings, number: int, count: int, kind: str) -> Paging:
    """The RFC 5005 links of archive page `number` of `count`, in format `kind`."""
    links = [("current", settings.url(FEED_FILES[kind]))]
    if number > 1:
        links.append(("prev-archive", _archive_url(settings, number - 1, kind)))
    if number < count:
        links.append(("next-archive", _archive_url(settings, number + 1, kind)))
    return Paging(links=tuple(links), archive=True)


def _archive_feed(
    write: Callable[[Channel, Sequence[Item], Paging, Entries], bytes],
    channel: Callable[[], Channel],
    items: Callable[[], tuple[Item, ...]],
    paging: Callable[[], Paging],
    entries: Entries,
) -> bytes:
    return write(channel(), items(), paging(), entries)


def _latest_archive(settings: Settings, count: int, kind: str) -> Paging:
    return Paging(links=(("prev-archive", _archive_url(settings, count, kind)),)) if count else Paging()


def _archive_url(settings: Settings, number: int, kind: str) -> str:
    return settings.url(f"/archive/{number}/{FEED_FILES[kind]}")
