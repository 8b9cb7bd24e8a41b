"""Clips in and out: video files (decoded and encoded with PyAV, whose wheels carry ffmpeg) and
folders of numbered frames (through :mod:`jaxnst.image_io`, the only module that touches PIL).

Frames are RGB float32 (T, H, W, 3) in [0, 1]. Every failure raises :class:`VideoError`, one line
naming the file. Video files are written atomically (a temporary file, then a rename); a video
output keeps the input's audio track when the input is a video with one.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jaxnst import image_io
from jaxnst._atomic import atomic_path

VIDEO_SUFFIXES = (".mp4", ".gif", ".mov", ".mkv", ".webm", ".avi", ".m4v")
WRITE_SUFFIXES = {".mp4": "mp4", ".gif": "gif"}
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
FRAME_NAME = "frame_{:05d}.png"


class VideoError(ValueError):
    """A clip can't be read or written. The message is one line naming the file."""


@dataclasses.dataclass
class Clip:
    """A decoded clip. frames: (T, H, W, 3) float32 in [0, 1]; fps: frames per second of the
    source (a frame folder: 25); start: index of frames[0] in the source; audio: the source is a
    video file with an audio stream (kept by :func:`write`)."""

    frames: np.ndarray
    fps: float
    source: Path
    start: int = 0
    audio: bool = False


def _av():
    import av

    return av


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def _number_key(p: Path) -> tuple:
    nums = re.findall(r"\d+", p.stem)
    return (int(nums[-1]) if nums else -1, p.name)


def frame_paths(folder: Path) -> list[Path]:
    """The image files of a frame folder, in the order of the last number in their names."""
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
        ),
        key=_number_key,
    )


def _resize(frame: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return frame
    return image_io.resize(frame, size, min_side=16)


def _read_folder(folder: Path, start: int, count: int | None, size: int | None) -> Clip:
    paths = frame_paths(folder)
    if not paths:
        raise VideoError(f"{folder}: no frames (.png/.jpg) in this folder")
    chosen = paths[start:] if count is None else paths[start : start + count]
    if not chosen:
        raise VideoError(f"{folder}: --start {start} is past its {len(paths)} frames")
    frames: list[np.ndarray] = []
    for p in chosen:
        try:
            im = _resize(image_io.load(p), size)
        except image_io.ImageError as e:
            raise VideoError(str(e)) from None
        if frames and im.shape != frames[0].shape:
            raise VideoError(
                f"{p}: {im.shape[1]}x{im.shape[0]} px, but {chosen[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; frames must share one "
                "size"
            )
        frames.append(im)
    return Clip(np.stack(frames).astype(np.float32), 25.0, folder, start, False)


def _decode(path: Path, start: int, count: int | None, size: int | None) -> Clip:
    av = _av()
    try:
        container = av.open(str(path))
    except Exception as e:  # noqa: BLE001 (corrupt files raise many kinds; all are bad input)
        raise VideoError(f"{path}: not a readable video ({_one_line(e)})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        frames: list[np.ndarray] = []
        seen = 0
        try:
            for frame in container.decode(stream):
                if seen >= start:
                    frames.append(
                        _resize(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0, size)
                    )
                seen += 1
                if count is not None and len(frames) >= count:
                    break
        except Exception as e:  # noqa: BLE001 (as above)
            raise VideoError(f"{path}: corrupt or truncated video ({_one_line(e)})") from None
        has_audio = bool(container.streams.audio)
    if not frames:
        what = (
            "no frames could be decoded"
            if seen == 0
            else f"--start {start} is past its {seen} frames"
        )
        raise VideoError(f"{path}: {what} (empty, corrupt or truncated video?)")
    return Clip(np.stack(frames), float(rate), path, start, has_audio)


def read(
    path: str | os.PathLike,
    *,
    start: int = 0,
    max_frames: int | None = None,
    size: int | None = None,
) -> Clip:
    """Read frames ``start`` .. ``start + max_frames - 1`` of a video file or a frame folder,
    resized so the longer side is ``size`` (Lanczos, float; None keeps the size)."""
    p = Path(path)
    if start < 0 or (max_frames is not None and max_frames < 1):
        raise VideoError(f"{p}: start must be >= 0 and max_frames >= 1")
    if not p.exists():
        raise VideoError(f"{p}: no such file or folder")
    if p.is_dir():
        return _read_folder(p, start, max_frames, size)
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file")
    return _decode(p, start, max_frames, size)


def output_kind(path: str | os.PathLike) -> str:
    """'folder', 'mp4' or 'gif' for an output path, checked before any work. A path with no
    suffix (or an existing folder) is a frame folder; its parent must exist."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir() or (not p.suffix and not p.exists()):
        kind = "folder"
    elif p.suffix.lower() in WRITE_SUFFIXES:
        kind = WRITE_SUFFIXES[p.suffix.lower()]
    else:
        raise VideoError(
            f"{p}: unknown output extension {p.suffix or '(none)'!r}; expected "
            f"{', '.join(WRITE_SUFFIXES)} or a folder"
        )
    if not parent.is_dir():
        raise VideoError(f"{p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VideoError(f"{p}: not writable")
    return kind


def save_frame(folder: Path, index: int, frame: np.ndarray) -> Path:
    """Write frame ``index`` (H, W, 3) float in [0, 1] as ``folder/frame_NNNNN.png``, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    return image_io.save(folder / FRAME_NAME.format(index), np.clip(frame, 0.0, 1.0))


def _uint8(frame: np.ndarray, even: bool) -> np.ndarray:
    a = image_io.to_uint8(np.clip(frame, 0.0, 1.0))
    if even:  # yuv420p needs even sides: repeat the last row/column
        a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)), mode="edge")
    return a


def _gif_graph(av, w: int, h: int, tb: fractions.Fraction):
    # One palette for the whole clip (palettegen sees every frame before paletteuse emits any),
    # so colours do not jump between frames, as a fixed or per-frame palette would make them.
    g = av.filter.Graph()
    src = g.add_buffer(width=w, height=h, format="rgb24", time_base=tb)
    split, gen = g.add("split"), g.add("palettegen", "stats_mode=full")
    use, sink = g.add("paletteuse", "dither=bayer:bayer_scale=4"), g.add("buffersink")
    src.link_to(split)
    split.link_to(gen, 0, 0)
    split.link_to(use, 1, 0)
    gen.link_to(use, 0, 1)
    use.link_to(sink)
    g.configure()
    return g


def _pull_all(av, graph) -> Iterator:
    while True:
        try:
            yield graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            return


def _copy_audio(av, out, audio: Clip, n: int) -> None:
    """Remux (no re-encoding) the source's audio packets that fall in the written frames' time
    span, [start, start + n) frames at the source's rate, shifted to begin at 0."""
    with av.open(str(audio.source)) as src:
        a_in = src.streams.audio[0]
        a_out = out.add_stream_from_template(a_in)
        tb = a_in.time_base
        t0, t1 = audio.start / audio.fps, (audio.start + n) / audio.fps
        shift = round(t0 / tb)
        for packet in src.demux(a_in):
            if packet.dts is None or packet.pts is None:
                continue  # the demuxer's flush packet
            if not t0 - 1e-6 <= float(packet.pts * tb) < t1:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = a_out
            out.mux(packet)


def _encode(
    av, tmp: str, kind: str, frames: Sequence[np.ndarray], fps: float, audio: Clip | None
) -> int:
    rate = fractions.Fraction(fps).limit_denominator(1001)
    n = 0
    with av.open(tmp, "w", format=kind) as out:
        stream = None
        graph = None
        for f in frames:
            a = _uint8(f, even=kind == "mp4")
            if stream is None:
                h, w = a.shape[:2]
                stream = out.add_stream("libx264" if kind == "mp4" else "gif", rate=rate)
                stream.width, stream.height = w, h
                stream.pix_fmt = "yuv420p" if kind == "mp4" else "pal8"
                if kind == "mp4":
                    stream.options = {"crf": "18"}
                    if audio is not None and audio.audio:
                        _copy_audio(av, out, audio, len(frames))
                else:
                    graph = _gif_graph(av, w, h, 1 / rate)
            vf = av.VideoFrame.from_ndarray(a, format="rgb24")
            vf.pts, vf.time_base = n, 1 / rate
            n += 1
            if graph is not None:
                graph.push(vf)
                continue
            for packet in stream.encode(vf):
                out.mux(packet)
        if stream is None:
            raise VideoError("no frames to write")
        if graph is not None:
            graph.push(None)
            for pf in _pull_all(av, graph):
                for packet in stream.encode(pf):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return n


def write(
    path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float, audio: Clip | None = None
) -> Path:
    """Encode (H, W, 3) float frames in [0, 1] as ``path`` (.mp4: H.264, CRF 18, odd sides padded
    by one repeated row/column; .gif: one palette for the clip) or write them into a folder as
    frame_NNNNN.png. ``audio``: the clip they came from; its audio track, trimmed to the frames'
    time span, is copied into an .mp4 when the frame rate is unchanged."""
    p = Path(path)
    kind = output_kind(p)
    if kind == "folder":
        for i, f in enumerate(frames):
            save_frame(p, i + 1, f)
        return p
    av = _av()
    keep_audio = (
        audio if audio is not None and audio.audio and abs(audio.fps - fps) < 1e-3 else None
    )
    try:
        with atomic_path(p, 0o666 & ~_umask()) as tmp:
            _encode(av, tmp, kind, frames, fps, keep_audio)
    except VideoError as e:
        raise VideoError(f"{p}: {e}") from None
    except (OSError, av.error.FFmpegError) as e:
        raise VideoError(f"{p}: could not write ({_one_line(e)})") from None
    return p


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
