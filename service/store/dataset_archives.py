"""Image folders: a ZIP or tar(.gz) of ``<class>/<image>`` or ``<split>/<class>/<image>``.

Members are copied one by one into the dataset's folder, never by ``extractall``: each name
is checked first (no absolute paths, no ``..``, no links or devices), and the member count
and the bytes written are capped as they go, so an archive bomb stops at the cap.
"""

from __future__ import annotations

import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from PIL import Image

from torchkiln.service.store.errors import DatasetRejected

SPLITS = ("train", "val", "test")
IMAGES_DIR = "images"
# Finder and Explorer leave these in archives; they are not images of any class.
JUNK_PARTS = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
MAX_LISTED = 20
MAX_SIZES = 20
PREVIEW_IMAGES = 8
CHUNK = 1 << 20
DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_bytes: int  # uncompressed, all members together
    max_pixels: int


@dataclass
class _Budget:
    limits: ArchiveLimits
    members: int = 0
    written: int = 0
    files: list[tuple[str, ...]] = field(default_factory=list)

    def count(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DatasetRejected(
                f"the archive has more than {self.limits.max_members} members: split it"
            )

    def take(self, n: int) -> None:
        self.written += n
        if self.written > self.limits.max_bytes:
            raise DatasetRejected(
                f"the archive unpacks to more than {self.limits.max_bytes} bytes "
                "(TORCHKILN_MAX_DECODED_BYTES): upload a smaller one"
            )


def safe_parts(name: str) -> tuple[str, ...]:
    """A member name as path parts that stay inside the folder, or a refusal (zip-slip)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or DRIVE.match(name):
        raise DatasetRejected(f"archive member {name!r} has an absolute path: use relative paths")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise DatasetRejected(f"archive member {name!r} points outside the archive (..)")
    return parts


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p in JUNK_PARTS or p.startswith(".") for p in parts)


def unpack(path: Path, fmt: str, staging: Path, limits: ArchiveLimits) -> dict[str, Any]:
    """Unpack the archive into ``staging/images`` and return schema.json's content."""
    raw = staging / "raw"
    budget = _Budget(limits)
    try:
        members = _zip_members(path) if fmt == "zip" else _tar_members(path)
        for name, parts, source in members:
            budget.count()
            if not parts or _is_junk(parts):
                continue
            with source() as stream:
                _copy(stream, raw.joinpath(*parts), name, budget)
            budget.files.append(parts)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as error:
        raise DatasetRejected(f"the {fmt} archive is broken ({error}): upload it again") from None
    except (RuntimeError, NotImplementedError) as error:  # encrypted or unknown compression
        raise DatasetRejected(f"an archive member cannot be read: {error}") from None
    layout = _layout(budget.files)
    schema = _image_schema(raw, layout, limits.max_pixels)
    for parts, dest in layout.items():
        target = staging / IMAGES_DIR / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        (raw.joinpath(*parts)).rename(target)
    shutil.rmtree(raw, ignore_errors=True)
    return schema


Member = tuple[str, tuple[str, ...], Any]


def _zip_members(path: Path) -> Iterator[Member]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            parts = safe_parts(info.filename)
            mode = info.external_attr >> 16
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DatasetRejected(
                    f"archive member {info.filename!r} is a link or device: archive plain files"
                )
            if info.is_dir():
                yield info.filename, (), None
                continue
            yield info.filename, parts, lambda info=info: archive.open(info)


def _tar_members(path: Path) -> Iterator[Member]:
    # Stream mode: a .tar.gz is read once, front to back.
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            parts = safe_parts(member.name)
            if member.isdir():
                yield member.name, (), None
                continue
            if not member.isfile():
                raise DatasetRejected(
                    f"archive member {member.name!r} is a link or device: archive plain files"
                )
            yield member.name, parts, lambda member=member: _opened(archive.extractfile(member))


@contextmanager
def _opened(stream: IO[bytes] | None) -> Iterator[IO[bytes]]:
    assert stream is not None  # regular members always have a file object
    with stream:
        yield stream


def _copy(stream: IO[bytes], dest: Path, name: str, budget: _Budget) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "xb") as out:
            while chunk := stream.read(CHUNK):
                budget.take(len(chunk))
                out.write(chunk)
    except FileExistsError:
        raise DatasetRejected(f"the archive has two members named {name!r}") from None
    except OSError as error:  # a member under a file's name, a name too long
        raise DatasetRejected(f"archive member {name!r} cannot be unpacked: {error}") from None


def _layout(files: list[tuple[str, ...]]) -> dict[tuple[str, ...], PurePosixPath]:
    """Each file's place under images/: a common top folder stripped, then the split (if
    any), the class and the file name."""
    if not files:
        raise DatasetRejected("the archive holds no images: archive <class>/<image> folders")
    depth = 0
    while all(len(p) - depth > 2 for p in files) and len({p[depth] for p in files}) == 1:
        if files[0][depth] in SPLITS:
            break
        depth += 1
    stripped = {parts: parts[depth:] for parts in files}
    is_split = all(len(p) == 3 and p[0] in SPLITS for p in stripped.values())
    for parts, rest in stripped.items():
        if len(rest) != (3 if is_split else 2):
            raise DatasetRejected(
                f"archive member {'/'.join(parts)!r} does not fit <class>/<image> or "
                f"<split>/<class>/<image> (splits: {', '.join(SPLITS)}): move it"
            )
    return {parts: PurePosixPath(*rest) for parts, rest in stripped.items()}


def _image_schema(
    raw: Path, layout: dict[tuple[str, ...], PurePosixPath], max_pixels: int
) -> dict[str, Any]:
    sizes: Counter[tuple[int, int]] = Counter()
    modes: set[str] = set()
    classes: Counter[str] = Counter()
    splits: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for parts, dest in layout.items():
        described = _describe(raw.joinpath(*parts), max_pixels)
        if described is None:
            bad.append("/".join(parts))
            continue
        sizes[described[0]] += 1
        modes.add(described[1])
        *split, label, _ = dest.parts
        classes[label] += 1
        if split:
            entry = splits.setdefault(split[0], {"images": 0, "classes": Counter()})
            entry["images"] += 1
            entry["classes"][label] += 1
    if bad:
        more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise DatasetRejected(
            f"{len(bad)} files do not decode as images: {', '.join(sorted(bad)[:MAX_LISTED])}"
            f"{more}; remove them or save them as PNG or JPEG"
        )
    if len(classes) < 2:
        found = ", ".join(repr(c) for c in classes)
        raise DatasetRejected(
            f"found {len(classes)} class ({found}): an image dataset needs at least two class "
            "folders, <class>/<image>"
        )
    return {
        "kind": "images",
        "images": sum(classes.values()),
        "classes": [{"name": c, "count": classes[c]} for c in sorted(classes)],
        "splits": {
            s: {"images": e["images"], "classes": dict(sorted(e["classes"].items()))}
            for s, e in sorted(splits.items())
        },
        "sizes": [list(size) for size, _ in sizes.most_common(MAX_SIZES)],
        "modes": sorted(modes),
    }


def _describe(path: Path, max_pixels: int) -> tuple[tuple[int, int], str] | None:
    """The image's size and mode once it decodes fully; None if it does not."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                return None
            image.load()
            return image.size, image.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def sample_images(folder: Path, count: int = PREVIEW_IMAGES) -> list[dict[str, str]]:
    """The first ``count`` images in path order, as ``{"class", "path"}`` (path in the folder)."""
    root = folder / IMAGES_DIR
    samples: list[dict[str, str]] = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            samples.append({"class": path.parent.name, "path": str(path.relative_to(folder))})
            if len(samples) == count:
                break
    return samples
