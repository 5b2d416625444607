"""Copy the CI-sized subset of Pillow's Tests/images to images/, and its LICENSE; see README.md.

    python tests/data/pillow_images/select_subset.py /path/to/Pillow

Deterministic: the same Pillow tree gives the same files. Not named ``select.py``: run as a
script, its folder comes first on ``sys.path`` and the name would shadow the stdlib module.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEST = HERE / "images"
MAX_FILE_BYTES = 48 * 1024
# Damaged files of the decoded formats reach the deepest code: room for the larger ones.
MAX_DAMAGED_BYTES = 128 * 1024
NOT_IMAGES = {".txt", ".pkl"}
# Fuzzer finds and hand-made damage, kept whatever their format.
HOSTILE = re.compile(
    r"crash|oom|timeout|ossfuzz|overrun|overflow|trunc|broken|bad|invalid|corrupt|junk|bomb"
    r"|negative|zero|oob|malformed|_dos|short|reallybig",
    re.IGNORECASE,
)
# Whole folders: bmpsuite's good, questionable and bad files, and APNG edge cases.
WHOLE_DIRS = ("apng", "bmp/b", "bmp/g", "bmp/q")
# The formats the service decodes get every file named for a feature its decoder handles,
# plus DECODED_SPREAD more spread over their sizes; every other format gets OTHER_SPREAD.
DECODED = {".png", ".apng", ".jpg", ".jpeg", ".gif", ".bmp", ".dib", ".mpo"}
FEATURES = re.compile(
    r"progressive|cmyk|ycck|adobe|anim|interlac|exif|icc|orient|mpo|16|1bit|pal|trns|transp"
    r"|rgba|alpha|gray|grey|rle|frame|dispose|mode|lossless",
    re.IGNORECASE,
)
DECODED_SPREAD = 10
OTHER_SPREAD = 3
# Features no name gives away, in files over the size limits.
EXTRA = (
    "app13-multiple.jpg",  # the only progressive JPEG under 100 KB
    "chi.gif",  # 31 frames
)


def spread(paths: list[Path], count: int) -> list[Path]:
    """``count`` files evenly spaced in size order, smallest and largest included."""
    ordered = sorted(paths, key=lambda p: (p.stat().st_size, p.as_posix()))
    if len(ordered) <= count:
        return ordered
    step = (len(ordered) - 1) / (count - 1)
    return [ordered[round(i * step)] for i in range(count)]


def is_wanted(path: Path, images: Path) -> bool:
    """Named as damaged, in a whole folder, or a decoded format named for a feature."""
    folder = path.parent.relative_to(images).as_posix()
    is_decoded = path.suffix.lower() in DECODED
    return bool(
        HOSTILE.search(path.name)
        or folder.startswith(WHOLE_DIRS)
        or (is_decoded and FEATURES.search(path.name))
    )


def within_limits(path: Path) -> bool:
    is_damaged_decoded = path.suffix.lower() in DECODED and HOSTILE.search(path.name)
    limit = MAX_DAMAGED_BYTES if is_damaged_decoded else MAX_FILE_BYTES
    return path.suffix.lower() not in NOT_IMAGES and path.stat().st_size <= limit


def choose(images: Path) -> list[Path]:
    """The subset, as paths relative to Pillow's Tests/images."""
    files = [p for p in images.rglob("*") if p.is_file() and within_limits(p)]
    chosen = {images / name for name in EXTRA} | {p for p in files if is_wanted(p, images)}
    by_suffix: dict[str, list[Path]] = {}
    for path in files:
        by_suffix.setdefault(path.suffix.lower(), []).append(path)
    for suffix, group in by_suffix.items():
        chosen.update(spread(group, DECODED_SPREAD if suffix in DECODED else OTHER_SPREAD))
    return sorted(p.relative_to(images) for p in chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pillow", type=Path, help="a Pillow checkout (holds Tests/images)")
    pillow = parser.parse_args().pillow
    images = pillow / "Tests" / "images"
    chosen = choose(images)
    shutil.rmtree(DEST, ignore_errors=True)
    for relative in chosen:
        target = DEST / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(images / relative, target)
    shutil.copyfile(pillow / "LICENSE", HERE / "LICENSE")
    total = sum((DEST / p).stat().st_size for p in chosen)
    sys.stdout.write(f"{len(chosen)} files, {total:,} bytes\n")


if __name__ == "__main__":
    main()
