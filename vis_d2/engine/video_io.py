"""Video files and frame folders as lazy frame sequences for any vis_d2 model, and an atomic video writer.

A video model's per-video inference (docs/interfaces.md §3) takes ``video["image"]``: a sequence whose
``[t]`` returns frame t as a (3, H, W) uint8 tensor in ``INPUT.FORMAT``, resized by the test
augmentation. :func:`open_frames` gives such a sequence for an mp4 (or any container PyAV reads) or for a
folder of images, decoding one frame at a time: memory stays flat however long the video is.

mp4 support needs PyAV (``pip install av``, or ``pip install -e .[video]``); frame folders need nothing
beyond Pillow.
"""
import os
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.data.detection_utils import convert_PIL_to_numpy
from PIL import Image

from vis_d2.data.dataset_mapper import LazyVideoFrames

__all__ = ["MissingVideoDependency", "VideoFileFrames", "open_frames", "VideoFileWriter", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class MissingVideoDependency(ImportError):
    """PyAV is needed to read or write video files."""


def _import_av():
    try:
        import av
    except ImportError as e:
        raise MissingVideoDependency(
            "Reading and writing video files needs PyAV: pip install av (or pip install -e '.[video]'). "
            "A folder of frames works without it."
        ) from e
    return av


class VideoFileFrames(Sequence):
    """The frames of a video file, decoded on demand (sequential access is cheap, going back re-decodes).

    ``frames[t]`` is frame t as a (3, H, W) uint8 tensor in ``image_format`` after ``augmentations`` (the
    transform drawn on the first frame is reused, so all frames come out at one size).
    :meth:`raw_frames` iterates the original frames as (H, W, 3) RGB arrays.

    Attributes:
        path, height, width, fps, length.
    """

    def __init__(self, path: str, augmentations=(), image_format: str = "RGB", cache_size: int = 4):
        av = _import_av()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Video {path} not found")
        self.path = path
        self.image_format = image_format
        self.augmentations = augmentations if isinstance(augmentations, T.AugmentationList) else T.AugmentationList(list(augmentations))
        try:
            with av.open(path) as container:
                if not container.streams.video:
                    raise ValueError(f"{path} has no video stream")
                stream = container.streams.video[0]
                self.height, self.width = int(stream.codec_context.height), int(stream.codec_context.width)
                rate = stream.average_rate or stream.guessed_rate or Fraction(25)
                self.fps = float(rate)
                # The header's frame count can be missing or wrong; counting packets is exact and decodes nothing.
                self.length = sum(1 for p in container.demux(stream) if p.size > 0)
        except av.error.FFmpegError as e:
            raise ValueError(f"Cannot read video {path}: {e}") from e
        if self.length == 0:
            raise ValueError(f"Video {path} has no frames")
        self._cache_size = cache_size
        self._cache: "OrderedDict[int, np.ndarray]" = OrderedDict()  # last decoded RGB frames
        self._decoder: Optional[Iterator] = None
        self._container = None
        self._next = 0
        self._transforms = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self):  # picklable: the open decoder stays behind
        state = dict(self.__dict__, _decoder=None, _container=None, _next=0, _cache=OrderedDict())
        return state

    def _restart(self):
        av = _import_av()
        if self._container is not None:
            self._container.close()
        self._container = av.open(self.path)
        self._decoder = self._container.decode(video=0)
        self._next = 0

    def rgb(self, index: int) -> np.ndarray:
        """Frame ``index`` at its original size, (H, W, 3) uint8 RGB."""
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} out of range for a video of {self.length} frames")
        if index in self._cache:
            return self._cache[index]
        if self._decoder is None or index < self._next:
            self._restart()
        frame = None
        while self._next <= index:
            try:
                frame = next(self._decoder)
            except StopIteration:
                raise IndexError(f"{self.path}: the stream ended at frame {self._next} of {self.length}") from None
            array = frame.to_ndarray(format="rgb24")
            self._cache[self._next] = array
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self._next += 1
        return self._cache[index]

    def __getitem__(self, index):
        if isinstance(index, slice):
            raise TypeError("VideoFileFrames does not slice; index frames one at a time")
        index = int(index)
        if index < 0:
            index += self.length
        image = convert_PIL_to_numpy(Image.fromarray(self.rgb(index)), self.image_format)
        if self._transforms is None:
            aug_input = T.AugInput(image)
            self._transforms = self.augmentations(aug_input)
            image = aug_input.image
        else:
            image = self._transforms.apply_image(image)
        return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))

    def raw_frames(self) -> Iterator[np.ndarray]:
        for t in range(self.length):
            yield self.rgb(t)

    def close(self):
        if self._container is not None:
            self._container.close()
            self._container, self._decoder = None, None


def _frame_files(folder: str) -> List[str]:
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError(f"Folder {folder} holds no frames ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(folder, f) for f in names]


def open_frames(path: str, augmentations, image_format: str) -> Tuple[Sequence, dict]:
    """A lazy frame sequence for a video file or a folder of frames, and the video's description.

    Returns:
        ``(frames, info)``: ``frames[t]`` a (3, H', W') tensor as the test mapper gives; ``info`` has
        ``height``, ``width``, ``length``, ``fps`` (None for a folder), ``file_names`` and
        ``raw_frames`` (a callable iterating the original frames as (H, W, 3) RGB arrays).
    """
    if os.path.isdir(path):
        files = _frame_files(path)
        with Image.open(files[0]) as first:
            width, height = first.size
        frames = LazyVideoFrames(files, augmentations, image_format, video_id=os.path.basename(path.rstrip("/")),
                                 height=height, width=width)

        def raw_frames():
            for f in files:
                with Image.open(f) as im:
                    yield np.asarray(im.convert("RGB"))

        return frames, {"height": height, "width": width, "length": len(files), "fps": None,
                        "file_names": files, "raw_frames": raw_frames}
    if not os.path.exists(path):
        raise FileNotFoundError(f"Input {path} not found (give a video file or a folder of frames)")
    frames = VideoFileFrames(path, augmentations, image_format)
    names = [f"{path}#{t}" for t in range(len(frames))]
    return frames, {"height": frames.height, "width": frames.width, "length": len(frames), "fps": frames.fps,
                    "file_names": names, "raw_frames": frames.raw_frames}


_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}


class VideoFileWriter:
    """Write RGB frames to a video file (H.264 when available), atomically: the file appears on :meth:`close`.

    Frames go to a hidden temporary file in the target folder that is renamed over the target when the
    video is complete, so an interrupted demo never leaves a truncated video under the output name.
    Odd frame sizes are padded by one black row / column (H.264's 4:2:0 needs even sizes).
    """

    def __init__(self, path: str, fps: float, width: int, height: int):
        av = _import_av()
        ext = os.path.splitext(path)[1].lower()
        if ext not in _CONTAINERS:
            raise ValueError(f"Output video {path}: use one of {', '.join(_CONTAINERS)}")
        folder, name = os.path.split(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path, self._tmp = path, os.path.join(folder, f".{name}.tmp{ext}")
        self._container = av.open(self._tmp, mode="w", format=_CONTAINERS[ext])
        codec = "libx264" if "libx264" in av.codecs_available and ext != ".webm" else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.width, self.height = width + width % 2, height + height % 2
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._frame_type = av.VideoFrame
        self.frames_written = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        h, w = rgb.shape[:2]
        if (h, w) != (self.height, self.width):
            padded = np.zeros((self.height, self.width, 3), dtype=np.uint8)
            padded[:h, :w] = rgb
            rgb = padded
        frame = self._frame_type.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to its name."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (after an error)."""
        try:
            self._container.close()
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)
