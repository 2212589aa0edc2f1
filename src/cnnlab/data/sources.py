"""Where data sets live: the places searched, in order, and downloads that are verified and atomic."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_path

SYSTEM_ROOT = Path("/usr/share/datasets")  # Debian's dataset-* packages install here


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnlab"


def search_roots(data_root: str | Path | None = None) -> list[Path]:
    """--data-root, then $CNNLAB_DATA, then the user cache, then the system location."""
    roots = [Path(data_root)] if data_root else []
    if os.environ.get("CNNLAB_DATA"):
        roots.append(Path(os.environ["CNNLAB_DATA"]))
    return roots + [cache_root(), SYSTEM_ROOT]


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(urls: list[str], dest: Path, md5: str, progress: bool = True) -> Path:
    """Fetch the first URL that works into `dest`; the file appears only once its checksum matches."""
    from tqdm import tqdm

    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as response, atomic_path(dest) as tmp:
                total = int(response.headers.get("Content-Length") or 0) or None
                with (
                    open(tmp, "wb") as f,
                    tqdm(
                        total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False
                    ) as bar,
                ):
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        f.write(chunk)
                        bar.update(len(chunk))
                if md5sum(tmp) != md5:
                    raise OSError(f"checksum mismatch (expected md5 {md5})")
            return dest
        except (urllib.error.URLError, OSError, ValueError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', e)}")
    raise OSError("; ".join(failures))


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a tar archive into `dest`, refusing members that would land outside it (path traversal) or are
    links. It is unpacked into a temporary folder beside its destination, checked, and only then renamed into
    place: a process killed at any instant leaves either nothing or everything under the final names."""
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    with tempfile.TemporaryDirectory(prefix=f".{archive.name}.", suffix=".unpacking", dir=dest) as tmp:
        _extract_checked(archive, Path(tmp))
        for entry in sorted(Path(tmp).iterdir()):
            if entry.name != ".replaced":
                _move_into_place(entry, dest / entry.name, Path(tmp) / ".replaced")


def _extract_checked(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if not (m.isfile() or m.isdir()) or (target != dest and dest not in target.parents):
                    raise CnnlabError(f"{archive}: refusing unsafe archive member {m.name!r}")
            tar.extractall(dest, members=members, filter="data")
        short = next((m.name for m in members if m.isfile() and (dest / m.name).stat().st_size != m.size), None)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CnnlabError(f"{archive}: corrupt or truncated archive ({e}); delete it and download it again") from None
    if short:
        raise CnnlabError(f"{archive}: {short} came out the wrong size; delete the archive and download it again")


def _move_into_place(entry: Path, target: Path, trash: Path) -> None:
    """Rename `entry` to `target`. An old target (incomplete or damaged, or the caller would not unpack again) is
    first renamed into `trash`, inside the temporary folder that is deleted afterwards."""
    if target.exists():
        trash.mkdir(exist_ok=True)
        os.rename(target, trash / target.name)
    os.rename(entry, target)


def not_found(name: str, looked: list[Path], how: str, download_error: str | None) -> CnnlabError:
    """The offline message, on one line: every place looked, why the download failed, how to supply the files."""
    places = ", ".join(str(p) for p in looked)
    why = f" (download failed: {download_error})" if download_error else ""
    return CnnlabError(f"data set {name!r} not found; looked in {places}{why}; {how}")
