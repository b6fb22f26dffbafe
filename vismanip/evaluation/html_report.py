"""report.html: a run folder's tables, plots, contact sheet and rollout GIFs on one page.

Every evaluation, suite, DAgger and GAIL folder already holds markdown tables and pictures;
this page gathers them so that a person opens one file from disk in a browser. Paths are
relative, so the folder can be copied or zipped whole. The tables are our own markdown,
rendered by python-markdown (its `tables` extension).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import markdown

from vismanip.files import write_text_atomic

MAX_GIFS = 12  # a page of thumbnails, not every episode of a 1,000-episode suite

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img.plot { max-width: 100%; border: 1px solid #eee; }
.gifs { display: flex; flex-wrap: wrap; gap: 10px; }
.gifs figure { margin: 0; font-size: 0.8em; }
.gifs img { width: 168px; image-rendering: pixelated; }
footer { margin-top: 2em; font-size: 0.8em; color: #777; }
"""


def write_html_report(folder: Path, title: str) -> Path:
    """Write `folder/report.html` from the markdown, PNG and GIF files in `folder`."""
    folder = Path(folder)
    sections = [f"<h1>{html.escape(title)}</h1>"]
    for table in sorted(folder.glob("*.md")):
        body = markdown.markdown(table.read_text(), extensions=["tables"])
        sections.append(f"<h2>{html.escape(table.stem)}</h2>\n{body}")
    for picture in sorted(folder.glob("*.png")):
        name = html.escape(picture.name)
        sections.append(
            f'<h2>{html.escape(picture.stem)}</h2>\n<img class="plot" src="{name}" alt="{name}">'
        )
    gifs = sorted(folder.rglob("*.gif"))
    if gifs:
        figures = "\n".join(
            f'<figure><img src="{html.escape(gif.relative_to(folder).as_posix())}" '
            f'alt="{html.escape(gif.name)}"><figcaption>'
            f"{html.escape(gif.relative_to(folder).as_posix())}</figcaption></figure>"
            for gif in gifs[:MAX_GIFS]
        )
        more = f"<p>{len(gifs) - MAX_GIFS} more in the folder.</p>" if len(gifs) > MAX_GIFS else ""
        sections.append(f'<h2>rollouts</h2>\n<div class="gifs">\n{figures}\n</div>{more}')
    data = sorted(folder.glob("*.json"))
    if data:
        links = ", ".join(
            f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a>' for p in data
        )
        sections.append(f"<p>Machine-readable: {links}</p>")
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + f"\n<footer>vismanip, {written}</footer>\n</body></html>\n"
    )
    path = folder / "report.html"
    write_text_atomic(path, page)
    return path
