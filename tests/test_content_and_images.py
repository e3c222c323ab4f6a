"""The `content` setting (full text or summaries only) and the site's `icon` and `logo`:
what every document carries with them, what they cost, and the values refused at start."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

import feeds.build
import feeds.pipeline
import feeds.posts
from feeds.build import Build
from feeds.cli import main
from feeds.config import Settings, image_origin, load_settings
from feeds.errors import ConfigError
from feeds.index import index_html
from feeds.pipeline import Pipeline
from feeds.posts import SUMMARY_SOURCE_CHARS

from conftest import Calls, MakeSettings, WritePost, post_text
from feedcheck import NS, check_documents, parsed, strict_xml

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def build(settings: Settings) -> Build:
    return Pipeline(settings).run(NOW)


def feeds_of(built: Build) -> dict[str, bytes]:
    """Every RSS, Atom and JSON Feed document of a build, by path."""
    return {o.path: o.body for o in built.outputs if o.path.endswith(("rss.xml", "atom.xml", "feed.json"))}


def write_site(write_post: WritePost, posts: int = 5) -> None:
    """`posts` posts, every other one without a description, all tagged; with
    item_limit 2 there are archive pages too."""
    for n in range(posts):
        description = None if n % 2 else f"Summary {n} given."
        body = f"First paragraph of post {n}, *rendered*.\n\nSecond paragraph.\n"
        write_post(
            f"p{n}.md",
            post_text(
                title=f"Post {n}",
                date=str(1600000000 + n),
                description=description,
                body=body,
                extra="tags: Boats",
            ),
        )


# --- content = full | summary -----------------------------------------------------------


def test_content_is_full_by_default(write_post: WritePost, settings: Settings) -> None:
    write_site(write_post)
    assert settings.content == "full"
    documents = build(settings).documents
    _, atom, feed = check_documents(documents)
    assert strict_xml(documents.rss).find("channel/item/content:encoded", NS) is not None
    assert all(entry.content for entry in atom.entries)
    assert all("content_html" in item for item in feed["items"])


def test_summary_mode_writes_no_text_anywhere(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_site(write_post)
    settings = make_settings(content="summary", item_limit=2)
    built = build(settings)
    check_documents(built.documents)
    documents = feeds_of(built)
    assert {"rss.xml", "tags/boats/atom.xml", "archive/1/rss.xml", "archive/2/atom.xml"} <= set(documents)
    summaries = {}
    for path, body in documents.items():
        if path.endswith("rss.xml"):
            channel = strict_xml(body).find("channel")
            assert channel is not None and channel.find("item/content:encoded", NS) is None, path
            summaries.update((i.findtext("title"), i.findtext("description")) for i in channel.iter("item"))
        elif path.endswith("atom.xml"):
            assert strict_xml(body).find(f"{ATOM}entry/{ATOM}content") is None, path
            assert parsed(body).version == "atom10"
        else:
            items = json.loads(body)["items"]
            assert items and all("content_html" not in item for item in items), path
            assert all(item["content_text"] == item["summary"] for item in items), path
    assert summaries == {
        f"Post {n}": f"Summary {n} given." if n % 2 == 0 else f"First paragraph of post {n}, rendered."
        for n in range(5)
    }


def test_summary_and_full_text_give_the_same_summaries(
    write_post: WritePost, make_settings: MakeSettings
) -> None:
    write_site(write_post)
    full = {item.post.source: item.summary for item in build(make_settings()).items}
    summary = {item.post.source: item.summary for item in build(make_settings(content="summary")).items}
    assert summary == full


@pytest.mark.parametrize("content", ["full", "summary"])
def test_summary_mode_never_renders_a_whole_body(
    write_post: WritePost, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    write_site(write_post, posts=6)
    # A long body (under max_render_bytes) that full text renders whole.
    write_post("long.md", post_text(title="Long", date="1500000000", description=None, body="word " * 60_000))
    renders = Calls(monkeypatch, feeds.build, "render")
    heads = Calls(monkeypatch, feeds.posts, "first_paragraph")
    reads = Calls(monkeypatch, feeds.pipeline, "post_body")
    built = build(make_settings(content=content))
    assert len(built.items) == 7
    # The four posts without a description take their summary from a bounded head of
    # the body when they are parsed, in either mode, so the two modes cannot differ.
    assert [limit for _, limit in heads.arguments] == [SUMMARY_SOURCE_CHARS] * 4
    if content == "full":
        assert (len(renders.arguments), len(reads.arguments)) == (7, 7)  # every post rendered whole
    else:
        assert (len(renders.arguments), len(reads.arguments)) == (0, 0)  # no body read again
        long = next(item for item in built.items if item.post.source == "long.md")
        assert long.html == "" and long.summary.startswith("word word") and len(long.summary) <= 301


@pytest.mark.parametrize("value", ["excerpt", "", "Full text"])
def test_a_bad_content_value_is_refused(make_settings: MakeSettings, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(content=value)
    assert caught.value.setting == "content" and "'full' or 'summary'" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_content_from_the_environment(tmp_path: Path, content_dir: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    loaded = load_settings(
        config_path=empty, environ={"FEEDS_CONTENT": " Summary ", "FEEDS_CONTENT_DIR": str(content_dir)}
    )
    assert loaded.content == "summary"


# --- icon and logo ------------------------------------------------------------------------


def test_icon_and_logo_in_every_format(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_site(write_post)
    settings = make_settings(
        base_url="https://example.com/blog/",
        icon="/icon.png",
        logo="https://cdn.example.org/logo.svg",
        item_limit=2,
    )
    assert settings.icon == "https://example.com/blog/icon.png"
    assert settings.logo == "https://cdn.example.org/logo.svg"
    built = build(settings)
    check_documents(built.documents)
    documents = feeds_of(built)
    for path, body in documents.items():
        if path.endswith("rss.xml"):
            channel = strict_xml(body).find("channel")
            assert channel is not None
            image = channel.find("image")
            assert image is not None, path
            assert [(child.tag, child.text) for child in image] == [
                ("url", "https://example.com/blog/icon.png"),
                ("title", channel.findtext("title")),
                ("link", channel.findtext("link")),
            ]
            assert parsed(body).feed.image.href == settings.icon
        elif path.endswith("atom.xml"):
            root = strict_xml(body)
            assert root.findtext(f"{ATOM}icon") == settings.icon, path
            assert root.findtext(f"{ATOM}logo") == settings.logo, path
            feed = parsed(body).feed
            assert (feed.icon, feed.logo) == (settings.icon, settings.logo)
        else:
            document = json.loads(body)
            assert (document["icon"], document["favicon"]) == (settings.icon, settings.icon), path
    page = index_html(settings, built.items, built.terms).decode()
    assert '<link rel="icon" href="https://example.com/blog/icon.png">' in page


def test_a_logo_alone_is_the_rss_image(write_post: WritePost, make_settings: MakeSettings) -> None:
    write_site(write_post, posts=1)
    settings = make_settings(logo="/logo.png")
    documents = build(settings).documents
    _, atom, feed = check_documents(documents)
    assert strict_xml(documents.rss).findtext("channel/image/url") == "https://example.com/logo.png"
    assert atom.feed.logo == "https://example.com/logo.png" and "icon" not in atom.feed
    assert "icon" not in feed and "favicon" not in feed
    assert 'rel="icon"' not in index_html(settings, [], []).decode()


def test_without_icon_or_logo_nothing_is_written(write_post: WritePost, settings: Settings) -> None:
    write_site(write_post, posts=1)
    documents = build(settings).documents
    assert strict_xml(documents.rss).find("channel/image") is None
    assert strict_xml(documents.atom).find(f"{ATOM}icon") is None
    assert strict_xml(documents.atom).find(f"{ATOM}logo") is None
    assert "icon" not in json.loads(documents.json)


def test_image_origin_is_what_a_content_security_policy_names(make_settings: MakeSettings) -> None:
    settings = make_settings(icon="http://[::1]:8080/i.png", logo="/l.png")
    assert image_origin(settings.icon) == "http://[::1]:8080"
    assert image_origin(settings.logo) == "https://example.com"


BAD_IMAGES = [
    "icon.png",
    "ftp://example.com/icon.png",
    "javascript:alert(1)",
    "data:image/png;base64,AAAA",
    "//cdn.example.com/icon.png",
    "https:///icon.png",
    "https://user:secret@example.com/icon.png",
    "https://exa;mple.com/icon.png",
    "https://bücher.example/icon.png",
    "https://example.com/my icon.png",
    "/my icon.png",
    "/a/../../icon.png",
    "/%2E%2E/icon.png",
    "/./icon.png",
    "/\\icon.png",
    "/icon\x07.png",
]


@pytest.mark.parametrize("key", ["icon", "logo"])
@pytest.mark.parametrize("value", BAD_IMAGES)
def test_a_bad_icon_or_logo_is_refused(make_settings: MakeSettings, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(**{key: value})
    assert caught.value.setting == key
    assert str(caught.value).startswith(f"{key}: ") and "\n" not in str(caught.value)


def test_a_path_icon_under_an_odd_base_url_is_refused(make_settings: MakeSettings) -> None:
    """The path is checked once made absolute: the host must fit a CSP source too."""
    with pytest.raises(ConfigError) as caught:
        make_settings(base_url="https://exa;mple.com", icon="/icon.png")
    assert caught.value.setting == "icon"


def test_the_cli_stops_with_one_line_and_exit_2(
    tmp_path: Path, content_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("FEEDS_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "bad.toml"
    config.write_text(f"content_dir = '{content_dir}'\nlogo = 'javascript:alert(1)'\n")
    status = main(["--config", str(config), "build", "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("feeds: configuration error: logo: must be "), err
    assert "http(s) URL or a path starting with '/', got 'javascript:alert(1)'" in err
    assert not (tmp_path / "out").exists()
