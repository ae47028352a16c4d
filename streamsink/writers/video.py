"""The annotated video: the input's own timestamps, tick for tick, and its audio copied across."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

from streamsink.errors import SourceError, SourceNotFoundError, WriterError
from streamsink.types import Frame

logger = logging.getLogger("streamsink.writers")

from streamsink.writers.output import _prepare_output, _reason

# Fine enough that seconds-only timestamps (cameras, image folders) survive a
# round trip to the microsecond-ish, and the usual MPEG clock.
_FALLBACK_TIME_BASE = Fraction(1, 90000)

# Audio codecs known to remux cleanly, for containers where FFmpeg's own check
# says yes to codecs whose muxing can still fail at the trailer (PCM in mp4
# with an unnamed channel layout, for one). Other containers trust FFmpeg.
_REMUX_AUDIO = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".m4v": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le"},
    ".avi": {"aac", "mp3", "mp2", "ac3", "pcm_s16le"},
}
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# Codecs that take a constant-quality `crf` option.
_CRF_CODECS = {"libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}


class VideoWriter:
    """Encode annotated frames into a video file with the input's timestamps.

    Timestamps: each frame keeps `frame.pts_ticks` in `frame.time_base` (the
    stream and encoder time base are set to it, so nothing is rounded); frames
    without ticks use `frame.pts` seconds in 1/90000 s. A `time_base` given
    here replaces both (ticks are rescaled to it). The container may store time more coarsely (Matroska keeps
    milliseconds; AVI keeps none, so only a constant rate survives there and
    H.264-in-AVI reads back one frame late: prefer .mp4/.mkv, or
    `codec="mjpeg"` for .avi). Frames are never reordered: a timestamp that
    does not increase is bumped one tick past the previous one, logged once.

    Size: H.264 in yuv420p needs even sides, so an odd width or height is
    padded by one pixel that repeats the last column or row; the output is
    then one pixel wider or taller than the input and nothing is scaled or
    lost. An image of another size than `width` x `height` is scaled to it.

    Audio: with `audio_from` naming a file that has audio, its first audio
    stream is copied packet by packet when the output container takes that
    codec, and transcoded to AAC otherwise; it is cut where the last written
    video frame ends, so an interrupted run's audio stops with its video, and
    audio from before the first written frame is left out. A file without
    audio adds nothing.

    Interruption: `close()` (also run by `with` on any exception, Ctrl-C
    included) flushes the encoder and writes the trailer, so the file plays.
    Closing twice does nothing. If no frame was written, the file is removed
    rather than left empty and broken. A process killed outright (SIGKILL)
    never reaches `close()` and leaves no playable file.

    `crf` applies to x264/x265/VPx/AV1 encoders; `fps` is a frame-rate hint
    for the container and the encoder's rate control, never used to retime.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: float | None = None,
        time_base: Fraction | None = None,
        codec: str = "libx264",
        audio_from: str | Path | None = None,
        crf: int = 23,
    ) -> None:
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"width and height must be >= 1, got {width}x{height}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if time_base is not None and Fraction(time_base) <= 0:
            raise ValueError(f"time_base must be > 0, got {time_base}")
        if not 0 <= int(crf) <= 63:
            raise ValueError(f"crf must be in [0, 63], got {crf}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = fps
        self.codec = codec
        self.crf = int(crf)
        self.frames_written = 0
        self._time_base = Fraction(time_base) if time_base is not None else None
        self._last_ticks: int | None = None
        self._last_step = 0
        self._bumped = False
        self._resized = False
        self._closed = False
        self._audio: _AudioCopy | None = None

        import av

        if self.path.is_dir():
            raise WriterError(f"cannot write video {self.path}: it is a directory")
        movflags = {"movflags": "+faststart"} if self.path.suffix.lower() in {".mp4", ".mov", ".m4v"} else {}
        try:
            # Opening for writing only picks the format; the file is made below.
            self._container = av.open(str(self.path), "w", container_options=movflags)
        except (ValueError, av.FFmpegError, OSError) as error:
            raise WriterError(f"cannot write video {self.path}: {_reason(error)}") from None
        try:
            _prepare_output(self.path)
        except BaseException:
            self._container.close()
            raise
        try:
            self._stream = self._add_video_stream()
            if audio_from is not None:
                self._audio = _AudioCopy.open(self._container, Path(audio_from))
        except BaseException:
            self._container.close()
            self._remove_file()
            raise

    def _add_video_stream(self):
        import av

        rate = Fraction(self.fps).limit_denominator(1001000) if self.fps else None
        try:
            stream = self._container.add_stream(self.codec, rate=rate)
        except (ValueError, av.FFmpegError) as error:
            raise WriterError(f"cannot write video {self.path}: {_reason(error)}") from None
        formats = [f.name for f in (stream.codec_context.codec.video_formats or ())]
        # MJPEG takes yuv420p only with full range flagged; yuvj420p says so itself.
        preferred = ("yuvj420p", "yuv420p") if self.codec == "mjpeg" else ("yuv420p", "yuvj420p")
        for pix_fmt in preferred:
            if pix_fmt in formats:
                break
        else:
            pix_fmt = formats[0] if formats else "yuv420p"
        self._pix_fmt = pix_fmt
        even_w = "420" in pix_fmt or "422" in pix_fmt or "411" in pix_fmt
        even_h = "420" in pix_fmt
        self._pad = (self.width % 2 if even_w else 0, self.height % 2 if even_h else 0)
        stream.width = self.width + self._pad[0]
        stream.height = self.height + self._pad[1]
        stream.pix_fmt = pix_fmt
        options = {"bf": "0"}
        if self.codec in _CRF_CODECS:
            options["crf"] = str(self.crf)
        if self.codec == "libx264":
            options["preset"] = "veryfast"
        stream.options = options
        return stream

    @classmethod
    def like(cls, source, path: str | Path, **options) -> VideoWriter:
        """A writer for the annotated copy of `source` (an opened Source): its size, rate, timestamps and audio."""
        return cls(path, width=source.width, height=source.height, fps=source.fps, time_base=source.time_base,
                   audio_from=source.path if source.has_audio else None, **options)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, frame: Frame, image: np.ndarray | None = None) -> None:
        """Encode `image` (RGB uint8, defaults to `frame.image`) at `frame`'s timestamp."""
        if self._closed:
            raise WriterError(f"cannot write video {self.path}: writer is closed")
        image = frame.image if image is None else image
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            shape = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB array, got {shape}")
        import av

        if self._last_ticks is None:
            self._start(frame)
        ticks = self._ticks(frame)
        if self._last_ticks is not None and ticks <= self._last_ticks:
            if not self._bumped:
                logger.warning(
                    "%s: timestamp of frame %d does not increase; moved one tick past the previous frame",
                    self.path,
                    frame.index,
                )
                self._bumped = True
            ticks = self._last_ticks + 1
        picture = self._picture(av, image)
        picture.pts = ticks
        picture.time_base = self._time_base
        try:
            packets = self._stream.encode(picture)
            if self._audio is not None:
                self._audio.copy_until(ticks * self._time_base)
            self._container.mux(packets)
        except av.FFmpegError as error:
            raise WriterError(f"cannot write video {self.path}: {_reason(error)}") from None
        if self._last_ticks is not None:
            self._last_step = ticks - self._last_ticks
        self._last_ticks = ticks
        self.frames_written += 1

    def _start(self, frame: Frame) -> None:
        """Fix the time base from the first frame, before the header is written."""
        if self._time_base is None:
            if frame.pts_ticks is not None and frame.time_base is not None and frame.time_base > 0:
                self._time_base = Fraction(frame.time_base)
            else:
                self._time_base = _FALLBACK_TIME_BASE
        self._stream.time_base = self._time_base
        self._stream.codec_context.time_base = self._time_base
        if self._audio is not None:
            self._audio.start = self._ticks(frame) * self._time_base

    def _ticks(self, frame: Frame) -> int:
        tb = self._time_base
        if frame.pts_ticks is not None and frame.time_base is not None and frame.time_base > 0:
            if frame.time_base == tb:
                return int(frame.pts_ticks)
            return round(Fraction(int(frame.pts_ticks)) * Fraction(frame.time_base) / tb)
        return round(Fraction(float(frame.pts)) / tb)

    def _picture(self, av, image: np.ndarray):
        if image.shape[:2] != (self.height, self.width):
            if not self._resized:
                logger.warning(
                    "%s: image %dx%d scaled to the writer's %dx%d",
                    self.path,
                    image.shape[1],
                    image.shape[0],
                    self.width,
                    self.height,
                )
                self._resized = True
            image = (
                av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                .reformat(width=self.width, height=self.height)
                .to_ndarray()
            )
        pad_w, pad_h = self._pad
        if pad_w or pad_h:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        return picture.reformat(format=self._pix_fmt)

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio, write the trailer; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written:
                import av

                try:
                    self._container.mux(self._stream.encode(None))
                    if self._audio is not None:
                        step = self._last_step or (
                            round(1 / (Fraction(self.fps) * self._time_base)) if self.fps else 0
                        )
                        self._audio.copy_until((self._last_ticks + step) * self._time_base, flush=True)
                except av.FFmpegError as error:
                    raise WriterError(f"cannot finish video {self.path}: {_reason(error)}") from None
        finally:
            try:
                if self._audio is not None:
                    self._audio.close()
            finally:
                try:
                    self._container.close()
                except Exception as error:
                    raise WriterError(f"cannot finish video {self.path}: {_reason(error)}") from None
                finally:
                    if not self.frames_written:
                        self._remove_file()

    def _remove_file(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


class _AudioCopy:
    """The first audio stream of a file, fed into an output up to a given time."""

    def __init__(self, source, in_stream, out_stream, transcode: bool) -> None:
        self._source = source
        self._in = in_stream
        self._out = out_stream
        self._transcode = transcode
        self._packets = source.demux(in_stream)
        self._pending = None
        self._done = False
        self.start: Fraction | None = None

    @classmethod
    def open(cls, container, path: Path) -> _AudioCopy | None:
        """Add the audio stream to `container`; None when `path` has no audio."""
        import av

        try:
            source = av.open(str(path))
        except FileNotFoundError:
            raise SourceNotFoundError(f"audio source not found: {path}") from None
        except (av.FFmpegError, OSError) as error:
            raise SourceError(f"cannot read audio from {path}: {_reason(error)}") from None
        if not source.streams.audio:
            source.close()
            return None
        in_stream = source.streams.audio[0]
        ctx = in_stream.codec_context
        allowed = _REMUX_AUDIO.get(Path(container.name).suffix.lower())
        try:
            if allowed is None or ctx.name in allowed:
                try:
                    out_stream = container.add_stream_from_template(in_stream)
                    return cls(source, in_stream, out_stream, transcode=False)
                except (ValueError, av.FFmpegError):
                    pass
            out_stream = container.add_stream("aac", rate=ctx.sample_rate or 48000)
            out_stream.layout = _AAC_LAYOUTS.get(ctx.layout.nb_channels, "stereo")
            logger.info("%s: audio %s transcoded to AAC for this container", path, ctx.name)
            return cls(source, in_stream, out_stream, transcode=True)
        except BaseException:
            source.close()
            raise

    def copy_until(self, end: Fraction, flush: bool = False) -> None:
        """Mux audio packets that start in [`start`, `end`) seconds.

        Audio from before the first video frame (an AAC priming packet at a
        negative time, say) is dropped: Matroska would otherwise shift every
        stream to make it non-negative and the video would lose its timestamps.
        """
        import av

        while not self._done:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets)
                except (StopIteration, av.FFmpegError):
                    self._done = True
                    break
            if packet.size == 0:
                continue
            if packet.pts is not None:
                time = packet.pts * packet.time_base
                if time >= end:
                    self._pending = packet
                    break
                if self.start is not None and time < self.start:
                    continue
            self._mux(packet)
        if flush and self._transcode:
            self._source_flush()

    def _mux(self, packet) -> None:
        if not self._transcode:
            packet.stream = self._out
            self._out.container.mux(packet)
            return
        for frame in packet.decode():
            self._out.container.mux(self._out.encode(frame))

    def _source_flush(self) -> None:
        self._out.container.mux(self._out.encode(None))

    def close(self) -> None:
        self._source.close()
