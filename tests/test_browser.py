"""The feeds opened in a real browser: headless Chromium (Debian's package, installed by
./run.sh test) renders /rss.xml and /atom.xml through the served XSLT as a readable
page, while the bytes readers get stay a valid feed."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import WritePost, post_text
from feedcheck import parsed
from server import Server

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class VisibleText(HTMLParser):
    """The text a person sees: everything outside <style>, <script> and <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in ("style", "script", "title", "head")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("style", "script", "title", "head")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: ./run.sh test installs Debian's package")
    return path


def browse(url: str, profile: Path, screenshot: Path) -> str:
    """The page's DOM after the browser is done with it; also saves a screenshot."""
    common = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    subprocess.run(
        [*common, "--window-size=1000,1200", f"--screenshot={screenshot}", url],
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, timeout=60)
    return result.stdout.decode()


@pytest.mark.parametrize("path", ["/rss.xml", "/atom.xml"])
def test_a_browser_shows_the_feed_as_a_page(
    tmp_path: Path, write_post: WritePost, content_dir: Path, path: str
) -> None:
    titles = ["Harbour opens for the season", "Lighthouse tours <every> Sunday"]
    write_post("one.txt", post_text(title=titles[0], date="1600000000"))
    write_post("two.txt", post_text(title=titles[1], date="1600000100"))
    server = Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=str(tmp_path / "state"))
    try:
        server.wait_until_ready()
        status, headers, feed = server.request(path)
        assert status == 200 and feed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet")
        assert len(parsed(feed).entries) == 2  # what readers see is still the feed
        status, headers, _ = server.request("/feed.xsl")
        assert (status, headers["content-type"]) == (200, "text/xsl; charset=utf-8")
        screenshot = tmp_path / f"{path.strip('/').replace('.', '-')}.png"
        dom = browse(f"http://127.0.0.1:{server.port}{path}", tmp_path / "profile", screenshot)
    finally:
        server.stop()
    text = VisibleText()
    text.feed(dom)
    visible = " ".join(" ".join(text.parts).split())
    assert "This is a web feed." in visible
    for title in titles:
        assert title in visible
    assert visible.index(titles[1]) < visible.index(titles[0])  # newest first
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
