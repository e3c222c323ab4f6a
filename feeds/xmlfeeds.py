"""RSS 2.0 and Atom 1.0 documents, written with feedgen and corrected where it is wrong.

This module is the only one that imports feedgen. What it mends, checked against
feedgen 1.0's source:
- dates: feedgen formats RFC 822 through `locale.setlocale()`, process-wide state that
  another thread may see half-switched; its formatter is replaced with one that needs no
  locale. Every date is set from the content, so no "now" reaches the output.
- Atom entry links lose `rel`, `type` and `length` (feedgen issue #135): an enclosure
  would become a second `rel="alternate"` link, which RFC 4287 §4.1.1 forbids. The links
  are rewritten after feedgen is done, and so is the id where it is not an IRI.

Each item's entry is written by feedgen and mended once (`Entries`), then copied into
every document that lists it: a post sits in the site feed, its section's, tags',
categories', authors' and an archive page, and writing it anew for each was most of
the cost of a build.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import ipaddress
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

import feedgen.entry
import feedgen.feed
from feedgen.entry import FeedEntry
from feedgen.ext.dc import DcEntryExtension
from feedgen.ext.media import MediaEntryExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feeds.dates import rfc822
from feeds.errors import Problem
from feeds.posts import Author, Post
from feeds.routes import ATOM_TYPE, RSS_TYPE
from feeds.routes import JSON_TYPE as JSON_TYPE  # re-exported

feedgen.feed.formatRFC2822 = rfc822
feedgen.entry.formatRFC2822 = rfc822

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
STYLESHEET_PATH = "/feed.xsl"

# The same hardened settings feedgen uses: no network, no entities, no DTD.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)

# RSS 2.0 requires an enclosure's length in bytes; the image is never fetched, so its
# size is unknown, and the RSS Advisory Board's profile says to write 0 in that case.
UNKNOWN_LENGTH = "0"

# An empty feed still needs an `updated`; a fixed instant keeps its bytes stable.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_IMAGE_TYPES = {
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".ico": "image/vnd.microsoft.icon",
    ".jpe": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
}


# RFC 3987 §2.2, the rules an Atom id needs (IRI = scheme ":" ihier-part ["?" iquery]
# ["#" ifragment]), written out as one regular expression.
_UCSCHAR = r"\xa0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef" + "".join(
    rf"\U{plane:04x}0000-\U{plane:04x}fffd" for plane in range(1, 14)
)
_UCSCHAR += r"\U000e1000-\U000efffd"
_IPRIVATE = r"\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
_PCT_ENCODED = r"%[0-9A-Fa-f]{2}"
_UNRESERVED_SUB_DELIMS = rf"A-Za-z0-9\-._~{_UCSCHAR}!$&'()*+,;="
_IPCHAR = rf"(?:[{_UNRESERVED_SUB_DELIMS}:@]|{_PCT_ENCODED})"
_IRI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:"  # scheme
    r"(?:"
    rf"//(?:(?:[{_UNRESERVED_SUB_DELIMS}:]|{_PCT_ENCODED})*@)?"  # "//" [iuserinfo "@"]
    rf"(?:\[(?P<literal>[^\]]*)\]|(?:[{_UNRESERVED_SUB_DELIMS}]|{_PCT_ENCODED})*)"  # ihost
    rf"(?::[0-9]*)?(?:/{_IPCHAR}*)*"  # [":" port] ipath-abempty
    rf"|(?!//)(?:{_IPCHAR}|/)*"  # ipath-absolute, ipath-rootless or ipath-empty
    r")"
    rf"(?:\?(?:{_IPCHAR}|[/?{_IPRIVATE}])*)?"  # "?" iquery
    rf"(?:#(?:{_IPCHAR}|[/?])*)?"  # "#" ifragment
)
_IP_FUTURE = re.compile(r"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")
_BIDI_FORMATTING = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Channel:
    """What a feed says about itself, whatever it lists."""

    id: str
    title: str
    description: str
    home_url: str
    language: str
    author: Author
    rss_url: str
    atom_url: str
    json_url: str
    hub: str = ""  # a WebSub hub that readers may subscribe through
    icon: str = ""  # the site's square icon, an absolute URL
    logo: str = ""  # the site's wide logo, an absolute URL


@dataclass(frozen=True)
class Item:
    """A post ready for a feed: its Markdown rendered and its summary decided."""

    post: Post
    html: str
    summary: str
    # Why the entry lost its content, if it did: the build reports these with the
    # problems of the posts it left out.
    problems: tuple[Problem, ...] = ()


def image_type(url: str) -> str:
    """The media type of an image URL, from its extension alone: the image is never fetched."""
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return (
        _IMAGE_TYPES.get(path[dot:], "application/octet-stream") if dot >= 0 else "application/octet-stream"
    )


def atom_id(post: Post) -> str:
    """The post id as an IRI (RFC 4287 §4.2.6): ids that are not IRIs get a stable UUID URN."""
    return post.id if is_iri(post.id) else uuid.uuid5(uuid.NAMESPACE_URL, post.id).urn


def is_iri(text: str) -> bool:
    """Whether `text` is an absolute IRI by the grammar of RFC 3987 §2.2, bidirectional
    formatting characters (§4.1) excluded, that Python's URL parser accepts too (it
    refuses a host that NFKC turns into a delimiter, such as U+FF03, a fullwidth "#"). Never
    raises, whatever the text."""
    match = _IRI.fullmatch(text)
    if match is None or _BIDI_FORMATTING.search(text):
        return False
    literal = match.group("literal")
    if literal is not None and not _ip_literal(literal):
        return False
    try:
        urlsplit(text)
    except ValueError:
        return False
    return True


def _ip_literal(text: str) -> bool:
    """RFC 3986 §3.2.2: an IPv6 address (no zone) or an IPvFuture between the brackets."""
    if _IP_FUTURE.fullmatch(text):
        return True
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return "%" not in text  # ipaddress accepts a zone id, which RFC 3986 does not


@dataclass(frozen=True)
class Paging:
    """RFC 5005 links of one document: `links` are (rel, href) pairs such as
    ("prev-archive", url); `archive` marks an archive document (`fh:archive`)."""

    links: tuple[tuple[str, str], ...] = ()
    archive: bool = False


NO_PAGING = Paging()


class ItemTexts:
    """Each item's text in one kind of document, made once (`make`) and reused by every
    document that lists the item; kept by item, so an edited post (a new item) is made
    anew. `carried()` starts the next build's cache with what this one used, letting go
    of items no build uses any more. A subclass says how the text is made."""

    def __init__(self, earlier: dict[Item, str] | None = None) -> None:
        self._earlier = earlier or {}
        self._used: dict[Item, str] = {}

    def make(self, item: Item) -> str:
        raise NotImplementedError

    def text(self, item: Item) -> str:
        known = self._used.get(item)
        if known is None:
            known = self._earlier.get(item)
            if known is None:
                known = self.make(item)
            self._used[item] = known
        return known

    def carried(self) -> Self:
        return type(self)(self._used)


class Entries:
    """Each item's RSS `<item>` and mended Atom `<entry>`, written by feedgen once and
    serialized once, as the bytes they take in any document (`_fragment`), which every
    document that lists the item puts in place. `carried()` starts the cache of the next
    build with what this one used, so a site's entries are written once across builds,
    and entries no build uses any more are let go."""

    def __init__(self, earlier: dict[Item, tuple[bytes, bytes]] | None = None) -> None:
        self._earlier = earlier or {}
        self._used: dict[Item, tuple[bytes, bytes]] = {}

    def fragments(self, kind: str, items: Sequence[Item]) -> list[bytes]:
        """The serialized `kind` ("rss" or "atom") entries of `items`, in order."""
        missing = []
        for item in items:
            if item not in self._used:
                known = self._earlier.get(item)
                if known is None:
                    missing.append(item)
                else:
                    self._used[item] = known
        if missing:
            written = _entry_elements(list(dict.fromkeys(missing)))
            rss_bytes = _fragments("rss", [rss_entry for rss_entry, _ in written.values()])
            atom_bytes = _fragments("atom", [atom_entry for _, atom_entry in written.values()])
            self._used.update(zip(written, zip(rss_bytes, atom_bytes, strict=True), strict=True))
        index = 0 if kind == "rss" else 1
        return [self._used[item][index] for item in items]

    def carried(self) -> Entries:
        return Entries(self._used)


def rss(
    channel: Channel, items: Sequence[Item], paging: Paging = NO_PAGING, entries: Entries | None = None
) -> bytes:
    entries = entries or Entries()
    generator = _generator(channel, items, channel.rss_url, RSS_TYPE)
    root = _rss_tree(generator)
    channel_element = root.find("channel")
    assert channel_element is not None
    # feedgen writes only the self link into RSS: hub and paging links and the archive
    # marker are added here, after the self link and before the first item.
    self_link = channel_element.find(f"{{{ATOM_NS}}}link")
    assert self_link is not None  # written by feedgen from the self link given
    position = list(channel_element).index(self_link) + 1
    for element in reversed(_link_elements(channel, paging)):
        channel_element.insert(position, element)
    # feedgen appends the items last in the channel: so do the fragments.
    return _with_entries(root, "rss", entries.fragments("rss", items))


def atom(
    channel: Channel, items: Sequence[Item], paging: Paging = NO_PAGING, entries: Entries | None = None
) -> bytes:
    entries = entries or Entries()
    generator = _generator(channel, items, channel.atom_url, ATOM_TYPE)
    # feedgen's Atom tree is namespaced only once serialised (it writes xmlns as an
    # attribute), so Atom takes the round trip through text.
    root = etree.fromstring(generator.atom_str(), _PARSER)
    root.extend(_link_elements(channel, paging))
    # feedgen appends the entries last in the feed, after the links: so do the fragments.
    return _with_entries(root, "atom", entries.fragments("atom", items))


# The closing lines of each kind of document, before which its entries go: the entries
# are the last children of RSS's channel and of Atom's feed element.
_CLOSING = {"rss": b"  </channel>\n</rss>\n", "atom": b"</feed>\n"}


def _with_entries(root: etree._Element, kind: str, fragments: Sequence[bytes]) -> bytes:
    """The document of `root` (which holds no entries yet) with the serialized entries
    appended last: the very bytes lxml writes for the tree with those entries in it."""
    document = _serialize(root)
    if not fragments:
        return document
    closing = _CLOSING[kind]
    assert document.endswith(closing)  # the element that closes first is the entries' parent
    return b"".join((document[: -len(closing)], *fragments, closing))


def _fragments(kind: str, elements: Sequence[etree._Element]) -> list[bytes]:
    """Each of `elements` as lxml writes it inside any document of `kind`: indented for
    its depth, and with the namespaces that feedgen's root element declares (the same
    for every document of a kind: the extensions loaded are always media and dc). Taken
    as the difference between a skeleton of that root with and without the element."""
    root = copy.deepcopy(_root_model(kind))  # its tag, attributes and namespaces, no children
    for child in list(root):
        root.remove(child)
    parent = etree.SubElement(root, "channel") if kind == "rss" else root
    # A first child, so that the parent is never written as an empty element.
    etree.SubElement(parent, "title" if kind == "rss" else f"{{{ATOM_NS}}}title")
    closing = _CLOSING[kind]
    head = _tostring(root)[: -len(closing)]
    fragments = []
    for element in elements:
        parent.append(copy.deepcopy(element))
        document = _tostring(root)
        del parent[-1]
        assert document.startswith(head) and document.endswith(closing)
        fragments.append(document[len(head) : -len(closing)])
    return fragments


@functools.cache
def _root_model(kind: str) -> etree._Element:
    """feedgen's root element for `kind`, of a feed with no entries (never changed)."""
    example = Channel("urn:x", "x", "x", "https://x/", "en", Author("x"), "https://x/r", "https://x/a", "")
    if kind == "rss":
        return _rss_tree(_generator(example, (), example.rss_url, RSS_TYPE))
    model: etree._Element = etree.fromstring(
        _generator(example, (), example.atom_url, ATOM_TYPE).atom_str(), _PARSER
    )
    return model


def _link_elements(channel: Channel, paging: Paging) -> list[etree._Element]:
    """Links feedgen cannot write into RSS (its issue #122 drops `rel="hub"`), written
    the same way into both formats: the WebSub hub, then the RFC 5005 links."""
    links = ((("hub", channel.hub),) if channel.hub else ()) + paging.links
    elements = [etree.Element(f"{{{ATOM_NS}}}link", {"rel": rel, "href": href}) for rel, href in links]
    if paging.archive:
        elements.append(etree.Element(f"{{{HISTORY_NS}}}archive", nsmap={"fh": HISTORY_NS}))
    return elements


def _generator(channel: Channel, items: Sequence[Item], self_url: str, self_type: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(channel.id)
    fg.title(channel.title)
    fg.description(channel.description or channel.title)
    fg.language(channel.language)
    fg.author(_author(channel.author))
    fg.generator("feeds")
    if self_type == RSS_TYPE:
        _rss_image(fg, channel)
    else:
        # feedgen's logo() also sets the RSS image: this generator writes Atom only.
        if channel.icon:
            fg.icon(channel.icon)
        if channel.logo:
            fg.logo(channel.logo)
    # The RSS channel <link> is the last alternate link given, so it goes last.
    fg.link(href=self_url, rel="self", type=self_type)
    fg.link(href=channel.home_url, rel="alternate", type="text/html")
    fg.updated(_seconds(max((item.post.updated for item in items), default=_EPOCH)))
    return fg


def _rss_image(fg: FeedGenerator, channel: Channel) -> None:
    """RSS has one image, with the channel's title and link (RSS 2.0 requires both, and
    says they should match the channel's). Readers show it beside the feed's name, as
    a small square, so the icon goes there, and the logo only when there is no icon."""
    image = channel.icon or channel.logo
    if image:
        fg.image(url=image, title=channel.title, link=channel.home_url)


def _feed_entry(item: Item) -> FeedEntry:
    """`item` as feedgen's entry, with the extensions a feed of ours loads, in its order."""
    post = item.post
    entry = FeedEntry()
    entry.register_extension("media", MediaEntryExtension, atom=True, rss=True)
    entry.register_extension("dc", DcEntryExtension, atom=False, rss=True)
    entry.guid(post.id, permalink=post.id_is_permalink)
    entry.title(post.title)
    entry.link(href=post.permalink, rel="alternate")
    entry.published(_seconds(post.date))
    entry.updated(_seconds(post.updated))
    entry.summary(item.summary)
    if item.html:  # archive entries carry the summary only
        entry.content(item.html, type="html")
    entry.author([_author(a) for a in post.authors])
    without_email = [a.name for a in post.authors if not a.email]
    if without_email:
        entry.dc.dc_creator(without_email)
    terms = dict.fromkeys(post.tags + post.categories)
    if terms:
        entry.category([{"term": term} for term in terms])
    if post.image:
        media_type = image_type(post.image)
        entry.enclosure(post.image, UNKNOWN_LENGTH, media_type)
        entry.media.content({"url": post.image, "medium": "image", "type": media_type}, group=None)
        entry.media.thumbnail({"url": post.image}, group=None)
    return entry


def _entry_elements(items: Sequence[Item]) -> dict[Item, tuple[etree._Element, etree._Element]]:
    """The RSS and the mended Atom element of each of `items`, from one feedgen entry
    each. feedgen writes Atom entries without a namespace (its feed element declares the
    Atom one as a plain attribute), so they take the same round trip through text as a
    feed, inside a feed element of their own: one for all of `items`."""
    written = [_feed_entry(item) for item in items]
    wrapper = etree.Element("feed", xmlns=ATOM_NS)
    wrapper.extend(entry.atom_entry() for entry in written)
    parsed = etree.fromstring(etree.tostring(wrapper), _PARSER)
    for element, item in zip(parsed, items, strict=True):
        _mend_atom_entry(element, item.post)
    return {
        item: (entry.rss_entry(), element)
        for item, entry, element in zip(items, written, parsed, strict=True)
    }


def _mend_atom_entry(element: etree._Element, post: Post) -> None:
    id_element = element.find(f"{{{ATOM_NS}}}id")
    assert id_element is not None  # feedgen refuses entries without one
    id_element.text = atom_id(post)
    for link in element.findall(f"{{{ATOM_NS}}}link"):
        element.remove(link)
    links = [{"rel": "alternate", "type": "text/html", "href": post.permalink}]
    if post.image:
        links.append(
            {"rel": "enclosure", "type": image_type(post.image), "length": UNKNOWN_LENGTH, "href": post.image}
        )
    for attributes in links:
        etree.SubElement(element, f"{{{ATOM_NS}}}link", attributes)


def _seconds(moment: dt.datetime) -> dt.datetime:
    """Feeds carry whole seconds, like RFC 822 and HTTP dates; posts keep full precision
    only to order themselves."""
    return moment.replace(microsecond=0)


def _author(author: Author) -> dict[str, str]:
    fields = {"name": author.name, "email": author.email, "uri": author.uri}
    return {key: value for key, value in fields.items() if value}


def _rss_tree(generator: FeedGenerator) -> etree._Element:
    """feedgen's RSS element tree itself: rss_str() serialises it, and parsing that text
    back was a tenth of a build with many archive pages. The private method is stable
    within the pinned feedgen 1.0.x; the tests compare the bytes."""
    root: etree._Element = generator._create_rss()[0]
    return root


def _serialize(root: etree._Element) -> bytes:
    # Browsers that open the feed render it through the stylesheet; readers ignore it.
    root.addprevious(
        etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{STYLESHEET_PATH}"')
    )
    return _tostring(root)


def _tostring(root: etree._Element) -> bytes:
    return bytes(
        etree.tostring(root.getroottree(), pretty_print=True, xml_declaration=True, encoding="UTF-8")
    )
