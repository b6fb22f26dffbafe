"""report.html gathers a run folder's tables, plots and GIFs, and opens from disk."""

import imageio.v3 as iio
import numpy as np
from conftest import open_in_chromium

from vismanip.evaluation.html_report import MAX_GIFS, write_html_report


def _folder(tmp_path, gifs: int):
    folder = tmp_path / "eval_lift"
    (folder / "videos").mkdir(parents=True)
    (folder / "eval.md").write_text(
        "| run | episodes | success |\n|---|---:|---:|\n| a | 2 | 50% |\n"
    )
    (folder / "eval.json").write_text("{}")
    rng = np.random.default_rng(0)
    iio.imwrite(folder / "shift.png", rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    for index in range(gifs):
        frames = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
        iio.imwrite(folder / "videos" / f"episode_{index:03d}.gif", frames, duration=50, loop=0)
    return folder


def test_page_has_the_table_plots_and_gifs_and_every_image_loads(tmp_path):
    folder = _folder(tmp_path, gifs=2)
    page = write_html_report(folder, "policy <on> lift")
    text = page.read_text()
    assert "<table>" in text and ">50%</td>" in text
    assert "policy &lt;on&gt; lift" in text  # titles are escaped
    assert 'href="eval.json"' in text

    images = open_in_chromium(page, tmp_path / "shot.png")
    assert sorted(src for src, _ in images) == [
        "shift.png",
        "videos/episode_000.gif",
        "videos/episode_001.gif",
    ]
    assert all(width > 0 for _, width in images), images  # each one loaded from disk
    assert iio.imread(tmp_path / "shot.png").shape[0] > 200  # a rendered page, not blank


def test_a_broken_image_path_is_caught_by_the_browser_check(tmp_path):
    folder = _folder(tmp_path, gifs=0)
    page = write_html_report(folder, "x")
    (folder / "shift.png").unlink()  # the page now points at a missing file
    images = open_in_chromium(page, tmp_path / "shot.png")
    assert images == [("shift.png", 0)]


def test_many_gifs_are_capped(tmp_path):
    folder = _folder(tmp_path, gifs=MAX_GIFS + 3)
    text = write_html_report(folder, "x").read_text()
    assert text.count("<figure>") == MAX_GIFS and "3 more in the folder" in text
