"""A seeded generator of posts in the users' style, for the benchmarks.

Each post is a `.txt` or `.md` file in one of a few sub-folders, with YAML front matter
written the way the users' posts are (`extends: _layouts.post`, `section: content`, an
`image:` URL, folded `title: >` and `description: >` scalars on the next indented line,
a Unix `date:` with microseconds, sometimes `tags:`; the fence and key lines end in a
space, as theirs do) and a Markdown body of about 3 KB: paragraphs, quotes, absolute and
relative links, images, lists, now and then a heading or a block quote.

The same `count` and `seed` always give byte-identical files. Every post has a distinct
date between 2015 and 2024 and a distinct file stem (the stem is the slug), so every
post is used. `--no-descriptions` writes the same posts without their `description:`
line, so that every summary comes from the body (what most sites look like). Run it as::

    python -m bench.corpus DIR COUNT [--seed N] [--no-descriptions]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
from collections.abc import Sequence
from pathlib import Path

FOLDERS = ("news", "features", "features/longreads", "notes", "reviews")
FOLDER_WEIGHTS = (40, 20, 5, 25, 10)
MD_SHARE = 0.35  # the rest are .txt, like most of the users' posts
TAG_SHARE = 0.4
BODY_BYTES = (2_700, 3_400)
FIRST_DATE = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
LAST_DATE = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)

_WORDS_TEXT = """
    the a an and of to in on for with at by from about after before over under between
    town council garden market river bridge library school museum festival concert
    season volunteers residents neighbours workshop harvest orchard bakery station
    mayor committee budget plan project plots beds shed barrel rain spring summer autumn
    winter morning evening weekend afternoon night week month year decade history
    record crowd stage band singer album ballad song piano guitar drums choir audience
    team coach match league final goal season player runner race trail path hill valley
    forest lake field farm tractor seed soil compost water sunlight shade fence gate
    road street corner square park bench lamp window door roof wall floor kitchen
    recipe bread soup coffee tea cake apples pears plums tomatoes beans onions herbs
    open opens opened close closes closed build builds built plant plants planted grow
    grows grew share shares shared meet meets met write writes wrote read reads said
    says told asked answered announced returned started finished planned promised
    new old small large quiet busy bright dark warm cold early late first last next
    local public free open annual weekly careful patient generous curious proud happy
    twenty thirty forty hundred several many few most every each other another some
    because while although when where which who whose that this these those there here
    very quite rather almost nearly only still already again together always never
    """
WORDS = tuple(_WORDS_TEXT.split())
_NAMES_TEXT = """
    Ada Bram Carla Dmitri Elena Farid Greta Hugo Ines Jonas Kiri Lena Marco Noor Oskar
    Priya Quinn Rosa Samir Tove Ulla Viktor Wren Xavi Yara Zeno Amélie Søren Zoë José
    """
NAMES = tuple(_NAMES_TEXT.split())
_PLACES_TEXT = """
    Willow-Lane Hollow-Ridge Mill-Street Harbour-Row Elm-Court Northfield Brookside
    Station-Road Kingsmead Old-Quarry Riverside Chapel-Hill Fenwick Marlowe-Green
    """
PLACES = tuple(_PLACES_TEXT.split())
TAGS = (
    "Gardening",
    "Community",
    "Music",
    "Sport",
    "Food",
    "Schools",
    "Council",
    "Weather",
    "History",
    "Arts",
    "Transport",
    "Libraries",
)
HOSTS = ("images.example.com", "cdn.example.net", "media.example.org", "static.example.com")
LINK_HOSTS = ("www.example.org", "news.example.com", "archive.example.net", "en.example.org")
PUNCTUATION_WORDS = ("\u2019s", "\u2019ve", "\u2026", "\u2014")  # curly apostrophe, ellipsis, em dash


class _Writer:
    """Produces one post's text from the shared seeded `random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))

    def name(self) -> str:
        return self.rng.choice(NAMES)

    def place(self) -> str:
        return self.rng.choice(PLACES).replace("-", " ")

    def slug(self) -> str:
        return "-".join(self.rng.choices(WORDS[20:], k=self.rng.randint(2, 4)))

    def sentence(self) -> str:
        rng = self.rng
        parts = [self.words(4, 9)]
        for _ in range(rng.randint(0, 3)):
            roll = rng.random()
            if roll < 0.3:
                parts.append(f"{self.name()}{rng.choice(PUNCTUATION_WORDS[:2])} {self.words(1, 3)}")
            elif roll < 0.5:
                parts.append(f"in {self.place()}")
            elif roll < 0.65:
                parts.append(f"[{self.words(2, 4)}]({self.link()})")
            elif roll < 0.75:
                parts.append(f"*{self.words(1, 3)}*")
            elif roll < 0.82:
                parts.append(f"**{self.words(1, 2)}**")
            else:
                parts.append(f"{rng.randint(2, 2000)} {self.words(1, 4)}")
            parts.append(self.words(2, 8))
        text = " ".join(parts)
        text = text[0].upper() + text[1:]
        return text + rng.choice((".", ".", ".", ".", "!", "?", "…"))

    def quote(self) -> str:
        said = " ".join(self.sentence() for _ in range(self.rng.randint(1, 2)))
        return f"“{said}” {self.name()} said."

    def link(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            return f"https://{rng.choice(LINK_HOSTS)}/{rng.randint(2015, 2024)}/{self.slug()}"
        if roll < 0.8:
            return f"/posts/{self.slug()}/"
        return f"../{self.slug()}/"

    def image(self, absolute: bool) -> str:
        rng = self.rng
        name = f"{self.slug()}_{rng.randint(100, 9999)}"
        if not absolute:
            return f"/images/{rng.randint(2015, 2024)}/{name}.jpg"
        year, month, day = rng.randint(2015, 2024), rng.randint(1, 12), rng.randint(1, 28)
        url = f"https://{rng.choice(HOSTS)}/{year}/{month:02d}/{day:02d}/{name}"
        if rng.random() < 0.2:
            width = rng.choice((1280, 1600, 2999))
            return f"{url}.jpg?crop={width},{width * 9 // 16},x0,y{rng.randint(0, 300)}&width={width}"
        return url + ".jpg"

    def paragraph(self) -> str:
        rng = self.rng
        if rng.random() < 0.25:
            return self.quote()
        return " ".join(self.sentence() for _ in range(rng.randint(1, 4)))

    def block(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.70:
            return self.paragraph()
        if roll < 0.80:
            bullet = rng.choice(("-", "*", "1."))
            items = [self.words(3, 10) for _ in range(rng.randint(2, 6))]
            if rng.random() < 0.4:
                items[0] = f"[{self.words(1, 3)}]({self.link()}): {items[0]}"
            if bullet == "1.":
                return "\n".join(f"{n}. {item}" for n, item in enumerate(items, 1))
            return "\n".join(f"{bullet} {item}" for item in items)
        if roll < 0.88:
            absolute = rng.random() < 0.6
            return f"![{self.words(2, 5)}]({self.image(absolute)})"
        if roll < 0.94:
            return f"## {self.words(2, 6).capitalize()}"
        return "> " + self.sentence()

    def body(self, lead: str) -> str:
        target = self.rng.randint(*BODY_BYTES)
        blocks = [lead]
        size = len(lead.encode())
        while size < target:
            block = self.block()
            blocks.append(block)
            size += len(block.encode()) + 2
        return "\n\n".join(blocks) + "\n"

    def title(self) -> str:
        rng = self.rng
        text = f"{self.place()} {self.words(3, 9)}"
        if rng.random() < 0.3:
            text = f"{self.name()}{PUNCTUATION_WORDS[0]} {self.words(2, 6)}: {text}"
        if rng.random() < 0.15:
            text += f" “{self.words(1, 3)}”"
        return text[0].upper() + text[1:]


def _dates(rng: random.Random, count: int) -> list[float]:
    """`count` distinct Unix times with microseconds, spread over several years."""
    first = int(FIRST_DATE.timestamp()) * 1_000_000
    span = int(LAST_DATE.timestamp()) * 1_000_000 - first
    return [(first + offset) / 1_000_000 for offset in rng.sample(range(span), count)]


def post_text(writer: _Writer, date: float, title: str | None = None, descriptions: bool = True) -> str:
    """One post: front matter in the users' style, then the Markdown body. Without
    `descriptions`, the same post without its `description:` line (the random draws
    are the same, so the rest of the corpus does not change)."""
    rng = writer.rng
    body = writer.body(writer.paragraph())
    first_paragraphs = [block for block in body.split("\n\n") if block[:1].isalpha()][:3]
    # Like the users' descriptions: the opening paragraphs run together on one line.
    description = "".join(re.sub(r"[\[\]*]|\([^)]*\)", "", p).replace("\n", " ") for p in first_paragraphs)
    lines = [
        "--- ",
        "extends: _layouts.post ",
        "section: content ",
        f"image: {writer.image(absolute=True)} ",
        "title: > ",
        f"  {title or writer.title()} ",
    ]
    cut = rng.randint(180, 900)
    if descriptions:
        lines += ["description: > ", f"  {description[:cut].strip()} "]
    lines.append(f"date: {date:.6f} ")
    if rng.random() < TAG_SHARE:
        lines.append(f"tags: [{', '.join(rng.sample(TAGS, rng.randint(1, 3)))}] ")
    lines.append("--- ")
    return "\n".join(lines) + "\n" + body


def generate(directory: Path, count: int, seed: int = 1, descriptions: bool = True) -> None:
    """Writes `count` posts below `directory` (created if needed); deterministic for a
    seed. Without `descriptions`, no post has a `description:` line."""
    rng = random.Random(seed)
    writer = _Writer(rng)
    dates = _dates(rng, count)
    for folder in FOLDERS:
        (directory / folder).mkdir(parents=True, exist_ok=True)
    folders = rng.choices(FOLDERS, weights=FOLDER_WEIGHTS, k=count)
    for index in range(count):
        suffix = ".md" if rng.random() < MD_SHARE else ".txt"
        stem = f"{index:06d}_{rng.getrandbits(64):016x}"
        path = directory / folders[index] / (stem + suffix)
        text = post_text(writer, dates[index], descriptions=descriptions)
        path.write_text(text, encoding="utf-8", newline="\n")


def new_post(title: str, date: float, seed: int) -> str:
    """A post with the given title and Unix date (and a body drawn from `seed`)."""
    return post_text(_Writer(random.Random(seed)), date, title)


def rewritten(text: str, seed: int, revision: int | None = None) -> str:
    """`text` with a new body drawn from `seed`: an edit. The front matter stays, except
    that with a `revision` the title ends in "(revision N)" instead of its old suffix."""
    writer = _Writer(random.Random(seed))
    head, fence, _ = text.partition("\n--- \n")
    if not fence:
        return text + "\n" + writer.paragraph() + "\n"
    if revision is not None:
        head = re.sub(
            r"^(title: > \n  .*?)(?: \(revision \d+\))? $",
            lambda match: f"{match.group(1)} (revision {revision}) ",
            head,
            count=1,
            flags=re.MULTILINE,
        )
    return head + fence + writer.body(writer.paragraph())


_DATE_LINE = re.compile(rb"^date: ([0-9.]+)", re.MULTILINE)


def post_dates(directory: Path) -> dict[Path, float]:
    """Every post's Unix date, read from its `date:` line (for picking the newest)."""
    dates: dict[Path, float] = {}
    for path in directory.rglob("*"):
        if path.suffix in (".md", ".txt") and not path.name.startswith((".", "_")):
            found = _DATE_LINE.search(path.read_bytes())
            if found:
                dates[path] = float(found.group(1))
    return dates


def newest(directory: Path, count: int | None = None) -> list[Path]:
    """The `count` newest posts below `directory` (all without a count), newest first."""
    dates = post_dates(directory)
    return sorted(dates, key=dates.__getitem__, reverse=True)[:count]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-descriptions",
        dest="descriptions",
        action="store_false",
        help="leave out every description, so that summaries come from the bodies",
    )
    args = parser.parse_args(argv)
    generate(args.directory, args.count, args.seed, args.descriptions)
    without = "" if args.descriptions else ", without descriptions"
    print(f"wrote {args.count} posts below {args.directory} (seed {args.seed}{without})")


if __name__ == "__main__":
    main()
