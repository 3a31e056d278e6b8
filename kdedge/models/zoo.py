"""The model zoo: published teacher weights by name, fetched once from their public origin and verified.

Each entry names where the file really comes from (a repository at a pinned commit and a path inside
it, so the URL can never silently change), its sha256, and what it is (architecture, scale, paper,
licence note). `weights_path(name)` returns a verified local file:

1. a copy in a folder of `KDEDGE_ZOO_DIR` (os.pathsep-separated; for offline machines and CI caches),
2. else the cache, `$KDEDGE_HOME/weights` or `~/.cache/kdedge/weights`,
3. else a download into the cache (unless `KDEDGE_OFFLINE=1`).

Every local copy is checked against the pinned sha256 before use (a few ms for these 2-3 MB files).
Downloads use urllib (no extra dependency), show a tqdm progress bar, write to a temporary file in the
cache folder, verify the hash, and only then rename into place: an interrupted or tampered download
never leaves a file that a later run would trust. A mismatch removes the file and raises a
`KdedgeError` naming both hashes.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from kdedge.common import sha256_file
from kdedge.errors import KdedgeError

RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"

IMDN_REPO, IMDN_COMMIT = "Zheng222/IMDN", "8f158e6a5ac9db6e5857d9159fd4a6c4214da574"
RLFN_REPO, RLFN_COMMIT = "bytedance/RLFN", "bccfde91bf8b2de80789ec033a029e6f2a932330"
IMDN_LICENCE = "research code and weights; no licence file in the upstream snapshot read here: check upstream before redistributing"
RLFN_LICENCE = "ByteDance research release; check the upstream repository's licence before redistributing"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    arch: str  # kdedge registry name, or "spandrel" when spandrel detects it
    scale: int
    repo: str
    commit: str
    path: str  # path of the file inside the repository
    sha256: str
    licence: str
    paper: str = ""
    published_psnr: Dict[str, float] = field(default_factory=dict)  # Y-PSNR on standard sets, as published
    notes: str = ""
    url_override: Optional[str] = None  # tests (loopback server) and private mirrors

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        return self.url_override or RAW_URL.format(repo=self.repo, commit=self.commit, path=self.path)

    @property
    def origin(self) -> str:
        return "%s @ %s, %s" % (self.repo, self.commit[:8], self.path)


def _imdn(scale: int, sha: str, psnr: Dict[str, float]) -> ZooEntry:
    return ZooEntry(
        "imdn_x%d" % scale, "imdn", scale, IMDN_REPO, IMDN_COMMIT, "checkpoints/IMDN_x%d.pth" % scale, sha,
        IMDN_LICENCE, paper="Hui et al., ACM MM 2019 (arXiv:1909.11856)", published_psnr=psnr,
        notes="RGB in [0, 1]; keys carry DataParallel's module. prefix",
    )


def _rlfn(name: str, arch: str, scale: int, sha: str, psnr: Dict[str, float], width: int) -> ZooEntry:
    return ZooEntry(
        name, arch, scale, RLFN_REPO, RLFN_COMMIT, "model_zoo/%s.pth" % name, sha,
        RLFN_LICENCE, paper="Kong et al., CVPRW 2022 (arXiv:2205.07514)", published_psnr=psnr,
        notes="RGB in [0, 255]; %d channels" % width,
    )


# sha256 values are those of ../shared/weights/SHA256SUMS (unchanged copies of the files at these origins).
ENTRIES: List[ZooEntry] = [
    _imdn(2, "740b39653592bd3f49955a21cd9e16f2d37f2c413368cc09327601b8fbe42ce1",
          {"Set5": 38.00, "Set14": 33.63, "B100": 32.19, "Urban100": 32.17, "Manga109": 38.88}),
    _imdn(3, "11b1716a19bc16e5e353e1db798d476169338e631eb170c82d765559888cb028",
          {"Set5": 34.36, "Set14": 30.32, "B100": 29.09, "Urban100": 28.17, "Manga109": 33.61}),
    _imdn(4, "e660c38221147217a136debeb99eb304d62d9c0f73ac421ed66281b619719714",
          {"Set5": 32.21, "Set14": 28.58, "B100": 27.56, "Urban100": 26.04, "Manga109": 30.45}),
    _rlfn("rlfn_x2", "rlfn", 2, "eafe5d5feeb122022453595c06d79160facdc157ae88deb02a44c50f5eba2d41",
          {"Set5": 38.07, "Set14": 33.72, "B100": 32.22, "Urban100": 32.33}, 52),
    _rlfn("rlfn_x4", "rlfn", 4, "8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0",
          {"Set5": 32.24, "Set14": 28.62, "B100": 27.60, "Urban100": 26.17}, 52),
    _rlfn("rlfn_s_x2", "rlfn_s", 2, "f5175f499f869c1b884c2552a1bcd6abd07ab352e3d8c8c9abe31b1deb60fe45",
          {}, 48),
    ZooEntry(
        "realesr_animevideov3_x4", "spandrel", 4, "Sourabh-lincode/MSL-Bonnet-Inspection",
        "f20cb8fdb146c2cc2ae8e152c6be5a4f5302e916", "weights/realesr-animevideov3.pth",
        "4e1e09ba96d08bd4b8455e8897c3242a3501e3766f359941ea894122e158a932",
        "Real-ESRGAN (xinntao/Real-ESRGAN) is BSD-3-Clause; this is a third-party copy of its release file",
        paper="Wang et al., Real-ESRGAN, ICCVW 2021 (arXiv:2107.10833)",
        notes="SRVGGNetCompact (Real-ESRGAN Compact), loaded through spandrel; GAN-trained, no PSNR claim",
    ),
]
ZOO: Dict[str, ZooEntry] = {e.name: e for e in ENTRIES}


def is_zoo_name(name: str) -> bool:
    return name in ZOO


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise KdedgeError("unknown zoo model %r" % name, fix="choose one of: %s (see `kdedge zoo list`)" % ", ".join(ZOO))
    return ZOO[name]


def kdedge_home() -> Path:
    return Path(os.environ.get("KDEDGE_HOME") or Path.home() / ".cache" / "kdedge")


def cache_dir() -> Path:
    return kdedge_home() / "weights"


def _zoo_dirs() -> List[Path]:
    value = os.environ.get("KDEDGE_ZOO_DIR", "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def _offline() -> bool:
    return os.environ.get("KDEDGE_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def verify_file(path: Path, sha256: str) -> None:
    """Raise KdedgeError naming the file and both hashes unless `path` has this sha256."""
    actual = sha256_file(path)
    if actual != sha256:
        raise KdedgeError(
            "checksum mismatch for %s: expected sha256 %s, got %s" % (path, sha256, actual),
            fix="delete the file and download it again (`kdedge zoo download NAME`), or check where it came from",
        )


def local_copy(entry: ZooEntry) -> Optional[Path]:
    """A verified local copy of `entry` (KDEDGE_ZOO_DIR first, then the cache), or None."""
    for folder in _zoo_dirs() + [cache_dir()]:
        candidate = folder / entry.filename
        if candidate.is_file():
            verify_file(candidate, entry.sha256)
            return candidate
    return None


def download(url: str, dest: Path, sha256: str, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` atomically, verifying `sha256` before the file appears at `dest`.

    Hand-written on urllib rather than a download library: it is 30 lines, and the one thing that
    matters (never rename an unverified file into place) is easiest to see here.
    """
    import hashlib
    import urllib.error
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="." + dest.name + ".", suffix=".part", dir=str(dest.parent))
    tmp = Path(tmp_name)
    bar = None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "kdedge"})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise KdedgeError("download of %s failed: HTTP %d %s" % (url, exc.code, exc.reason),
                              fix="check the URL, or put the file in a KDEDGE_ZOO_DIR folder") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise KdedgeError("download of %s failed: %s" % (url, getattr(exc, "reason", exc)),
                              fix="check the network, or put the file in a KDEDGE_ZOO_DIR folder") from exc
        with response, os.fdopen(fd, "wb") as out:
            fd = -1  # owned by `out` now
            total = int(response.headers.get("Content-Length") or 0) or None
            if progress:
                try:
                    from tqdm import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, leave=False)
                except ImportError:
                    bar = None
            h = hashlib.sha256()
            while True:
                block = response.read(1 << 16)
                if not block:
                    break
                out.write(block)
                h.update(block)
                if bar is not None:
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if actual != sha256:
            raise KdedgeError(
                "checksum mismatch for %s from %s: expected sha256 %s, got %s (the download was deleted)"
                % (dest.name, url, sha256, actual),
                fix="the file at the origin changed or the transfer was tampered with; do not use it",
            )
        os.replace(str(tmp), str(dest))
        return dest
    finally:
        if bar is not None:
            bar.close()
        if fd != -1:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


def weights_path(name: str, progress: bool = True) -> Path:
    """A verified local file for zoo model `name`, downloading it into the cache if needed."""
    entry = get_entry(name)
    found = local_copy(entry)
    if found is not None:
        return found
    dest = cache_dir() / entry.filename
    if _offline():
        raise KdedgeError(
            "zoo model %s is not available offline (KDEDGE_OFFLINE is set) and not found in %s"
            % (name, ", ".join(str(p) for p in _zoo_dirs() + [cache_dir()])),
            fix="copy %s (from %s) into a KDEDGE_ZOO_DIR folder, or pass it with --weights" % (entry.filename, entry.origin),
        )
    return download(entry.url, dest, entry.sha256, progress=progress)


def status(entry: ZooEntry) -> Tuple[str, Optional[Path]]:
    """('ok' | 'missing' | 'mismatch', path) for the local copy of `entry`, without downloading."""
    for folder in _zoo_dirs() + [cache_dir()]:
        candidate = folder / entry.filename
        if candidate.is_file():
            return ("ok" if sha256_file(candidate) == entry.sha256 else "mismatch"), candidate
    return "missing", None
