"""The feeds opened in a real browser: headless Chromium (Debian's package, installed by
./run.sh test) navigating to any feed gets the feed's HTML page, with no XSLT involved;
a browser that sends no Fetch Metadata (Chromium over plain http to a host other than
loopback) still renders /rss.xml and /atom.xml through the served XSLT; and the bytes
readers get stay a valid feed."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
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


# Chromium sends Fetch Metadata (Sec-Fetch-*) to potentially trustworthy origins only:
# https, and http to loopback. This name resolves to 127.0.0.1 in the browser, but over
# plain http it is no such origin, so the browser sends none, as on a plain-http site.
PLAIN_HTTP_HOST = "feeds.test"
XSLT_WARNING = "XSLT Processing Instructions have been deprecated"


def browse(url: str, profile: Path, screenshot: Path | None = None) -> tuple[str, str]:
    """The page's DOM after the browser is done with it, and the browser's log (console
    messages included); also saves a screenshot when asked."""
    common = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--host-resolver-rules=MAP {PLAIN_HTTP_HOST} 127.0.0.1",
        "--enable-logging=stderr",
        "--v=0",
    ]
    if screenshot is not None:
        subprocess.run(
            [*common, "--window-size=1000,1200", f"--screenshot={screenshot}", url],
            check=True,
            capture_output=True,
            timeout=60,
        )
    result = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, timeout=60)
    return result.stdout.decode(), result.stderr.decode(errors="replace")


def visible_text(dom: str) -> str:
    text = VisibleText()
    text.feed(dom)
    return " ".join(" ".join(text.parts).split())


@pytest.mark.parametrize("path", ["/rss.xml", "/atom.xml"])
def test_a_browser_without_fetch_metadata_shows_the_feed_through_xslt(
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
        url = f"http://{PLAIN_HTTP_HOST}:{server.port}{path}"
        dom, log = browse(url, tmp_path / "profile", screenshot)
    finally:
        server.stop()
    visible = visible_text(dom)
    assert "This is a web feed." in visible  # the stylesheet's words
    assert XSLT_WARNING in log  # Chromium's console: it ran the XSLT, and warns of its end
    for title in titles:
        assert title in visible
    assert visible.index(titles[1]) < visible.index(titles[0])  # newest first
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one


@pytest.fixture
def icon_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback server of one small icon, and the paths it was asked for."""
    asked: list[str] = []

    class Icon(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = bytes.fromhex(ICON_PNG)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Icon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/icon.png", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# A transparent 1x1 PNG.
ICON_PNG = (
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000b49444154789c"
    "6360000200000500017a5eab3f0000000049454e44ae426082"
)


def test_a_browser_navigating_to_any_feed_gets_its_page(
    tmp_path: Path, write_post: WritePost, content_dir: Path, icon_server: tuple[str, list[str]]
) -> None:
    icon, asked = icon_server
    titles = ["Harbour opens for the season", "Lighthouse tours <every> Sunday", "Ferry & quay"]
    for n, title in enumerate(titles):
        extra = "tags: Boats" if n else ""
        write_post(f"p{n}.txt", post_text(title=title, date=str(1600000000 + 100 * n), extra=extra))
    server = Server(
        tmp_path,
        content_dir,
        workers=1,
        via_cli=True,
        state_dir=str(tmp_path / "state"),
        icon=icon,
        item_limit="2",
    )
    pages = {
        "/rss.xml": titles[:0:-1],
        "/feed.json": titles[:0:-1],
        "/tags/boats/atom.xml": titles[:0:-1],
        "/archive/1/rss.xml": titles[1::-1],
    }
    try:
        server.wait_until_ready()
        for path, shown in pages.items():
            status, headers, _ = server.request(path)
            assert status == 200 and headers["content-type"].startswith("application/")  # readers: the feed
            screenshot = tmp_path / "page.png" if path == "/rss.xml" else None
            dom, log = browse(f"http://127.0.0.1:{server.port}{path}", tmp_path / "profile", screenshot)
            visible = visible_text(dom)
            lead = "This address is a web feed." if "archive" not in path else "This is a page of the archive"
            assert lead in visible, path
            assert [visible.index(title) for title in shown] == sorted(
                visible.index(title) for title in shown
            )
            assert "This is a web feed." not in visible, path  # not the stylesheet's page
            assert "XSLT" not in log, path  # no XSLT ran, so no warning of its removal
            assert "Content Security Policy" not in log, path  # nothing the page loads is refused
    finally:
        server.stop()
    assert (tmp_path / "page.png").stat().st_size > 10_000  # a rendered page, not a blank one
    assert "/icon.png" in asked  # the page's icon, allowed by its policy
