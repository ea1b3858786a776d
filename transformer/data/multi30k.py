"""Multi30k task 1 (raw): the public release's gzipped files, read from a local mirror or downloaded
once into the cache folder, and always checked against the SHA-256 sums kept here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from transformer.data.text_files import CorpusError, TextPairs, read_parallel

logger = logging.getLogger(__name__)

MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw"
MULTI30K_ENV = "MULTI30K_DIR"
LANGUAGES = ("en", "de", "fr", "cs")
# Split -> languages it exists in (the release has no 2017 test set for Czech).
SPLITS = {
    "train": LANGUAGES,
    "val": LANGUAGES,
    "test_2016_flickr": LANGUAGES,
    "test_2017_flickr": ("en", "de", "fr"),
}
SHA256 = {
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}
_POINT_AT_MIRROR = (
    "point at a local mirror of the release (a folder with its <split>.<lang>.gz files) with "
    f"data.multi30k_dir=/path/to/multi30k or `export {MULTI30K_ENV}=/path/to/multi30k`"
)


def check_request(split: str, src_lang: str, tgt_lang: str) -> None:
    """Raises CorpusError unless Multi30k has `split` in both languages."""
    for lang in (src_lang, tgt_lang):
        if lang not in LANGUAGES:
            raise CorpusError(
                f"Multi30k has no language {lang!r}; it has {', '.join(LANGUAGES)} "
                "(set data.src_lang / data.tgt_lang to two of them)."
            )
    have = [name for name, langs in SPLITS.items() if src_lang in langs and tgt_lang in langs]
    if split not in have:
        raise CorpusError(
            f"Multi30k has no split {split!r} for {src_lang}-{tgt_lang}; it has {', '.join(have)} "
            "(check data.valid_split / data.test_split)."
        )


def sha256_of(path: Path) -> str:
    """The hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, folder: Path) -> Path:
    """Downloads one release file into `folder` through a temporary file, checking its SHA-256.

    Raises:
        CorpusError: The checksum does not match (the temporary file is deleted).
        OSError: The download failed (urllib.error.URLError is an OSError).
    """
    url = f"{MULTI30K_URL}/{name}"
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=folder, prefix=f"{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        logger.info("Downloading %s", url)
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_of(tmp)
        if actual != SHA256[name]:
            raise CorpusError(
                f"Checksum mismatch for {url}: expected sha256 {SHA256[name]}, got {actual}; "
                f"the download was deleted. Retry later, or {_POINT_AT_MIRROR}."
            )
        return tmp.replace(folder / name)
    finally:
        tmp.unlink(missing_ok=True)


def _from_mirror(name: str, mirror: Path, source: str) -> Path:
    path = mirror / name
    if not path.is_file():
        raise CorpusError(
            f"Multi30k file {name} is not in the mirror {mirror} (from {source}); the mirror must "
            f"hold the release's files ({MULTI30K_URL}/<split>.<lang>.gz). Add it, or unset "
            f"{source} to download into the cache folder."
        )
    actual = sha256_of(path)
    if actual != SHA256[name]:
        raise CorpusError(
            f"{path} has sha256 {actual}, but the Multi30k release file has {SHA256[name]}; "
            f"replace it with {MULTI30K_URL}/{name}."
        )
    return path


def _from_cache(name: str, folder: Path, looked: str) -> Path:
    path = folder / name
    if path.is_file():
        if sha256_of(path) == SHA256[name]:
            return path
        logger.warning("Cached %s does not match its sha256; downloading it again", path)
        path.unlink()
    try:
        return download(name, folder)
    except OSError as error:
        raise CorpusError(
            f"Multi30k file {name} not found. Looked in: {looked}, and the cache folder {folder}; "
            f"downloading {MULTI30K_URL}/{name} failed ({error}). To use files you already "
            f"have, {_POINT_AT_MIRROR}."
        ) from error


def locate(name: str, mirror_dir: str | None, cache_dir: str) -> Path:
    """Finds a verified copy of one release file.

    Looks in `mirror_dir` (data.multi30k_dir), else in the folder named by MULTI30K_DIR, else in
    `<cache_dir>/multi30k`, downloading it there the first time.

    Raises:
        CorpusError: The file is missing from the mirror, fails its checksum, or cannot be fetched.
    """
    if mirror_dir:
        return _from_mirror(name, Path(mirror_dir), "data.multi30k_dir")
    env_dir = os.environ.get(MULTI30K_ENV)
    if env_dir:
        return _from_mirror(name, Path(env_dir), f"${MULTI30K_ENV}")
    looked = f"data.multi30k_dir (not set), ${MULTI30K_ENV} (not set)"
    return _from_cache(name, Path(cache_dir) / "multi30k", looked)


def read_multi30k(
    split: str, src_lang: str, tgt_lang: str, *, mirror_dir: str | None, cache_dir: str
) -> TextPairs:
    """Reads one split of Multi30k as sentence pairs.

    Args:
        split: A release split name: train, val, test_2016_flickr or test_2017_flickr.
        src_lang: One of en, de, fr, cs.
        tgt_lang: Another one of them.
        mirror_dir: A local mirror folder (data.multi30k_dir), or None.
        cache_dir: The folder whose multi30k/ subfolder receives downloads.
    """
    check_request(split, src_lang, tgt_lang)
    src = locate(f"{split}.{src_lang}.gz", mirror_dir, cache_dir)
    tgt = locate(f"{split}.{tgt_lang}.gz", mirror_dir, cache_dir)
    return read_parallel(src, tgt)
