"""tools/demo_video.py: any model's per-video inference on an mp4 (or a frame folder) -> one overlay frame per
input frame, per-frame PNGs and a valid YouTube-VIS results.json; frames are read lazily."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
_spec = importlib.util.spec_from_file_location("demo_video_cli", os.path.join(REPO, "tools", "demo_video.py"))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)
# random weights (no MODEL.WEIGHTS), small input, every track drawn
FAST = ["--confidence-threshold", "0", "--no-progress", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96",
        "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.WEIGHTS", ""]
H, W, N = 64, 96, 5


def moving_square_frames():
    frames = []
    for t in range(N):
        f = np.full((H, W, 3), 40, np.uint8)
        f[10 + 3 * t: 30 + 3 * t, 10 + 8 * t: 34 + 8 * t] = (220, 60, 60)
        frames.append(f)
    return frames


def write_mp4(path, frames, fps=5):
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def count_frames(path):
    with av.open(path) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.height, stream.codec_context.width)
        return sum(1 for _ in container.decode(stream)), size


def check_results(path, length):
    with open(path) as f:
        results = json.load(f)
    assert isinstance(results, list) and results, "random weights still give low-score tracks"
    for r in results:
        assert set(r) == {"video_id", "category_id", "score", "segmentations"} and r["video_id"] == 1
        assert 1 <= r["category_id"] <= 6 and 0.0 <= r["score"] <= 1.0 and len(r["segmentations"]) == length
        assert all(s is None or (s["size"] == [H, W] and isinstance(s["counts"], str)) for s in r["segmentations"])


def test_mp4_in_gives_one_overlay_frame_per_input_frame_pngs_and_results(tmp_path):
    src = str(tmp_path / "in.mp4")
    write_mp4(src, moving_square_frames())
    out, res, pngs = str(tmp_path / "out.mp4"), str(tmp_path / "results.json"), tmp_path / "png"
    args = demo.parse_args(["--config-file", CONFIG, "--input", src, "--output", out, "--png-dir", str(pngs),
                            "--results", res] + FAST)
    summary = demo.run(args)
    assert count_frames(out) == (N, (H, W))
    assert sorted(os.listdir(pngs)) == [f"{t:05d}.png" for t in range(N)]
    assert summary["frames"] == N and summary["drawn_tracks"] > 0
    check_results(res, N)
    assert not any(f.startswith(".") for f in os.listdir(tmp_path))  # no temporary files left behind
    import torch

    assert torch.is_grad_enabled()  # the demo does not change the process-wide autograd mode


def test_frame_folder_in_and_reading_stays_lazy(tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(moving_square_frames()):
        Image.fromarray(f).save(folder / f"{t:05d}.jpg")
    from vis_d2.data import dataset_mapper

    decoded = []  # the model must pull frames one by one, never the whole video up front
    real_read = dataset_mapper.read_video_frame
    monkeypatch.setattr(dataset_mapper, "read_video_frame", lambda *a, **k: decoded.append(a[0]) or real_read(*a, **k))
    out = str(tmp_path / "out.mp4")
    demo.run(demo.parse_args(["--config-file", CONFIG, "--input", str(folder), "--output", out,
                              "--results", str(tmp_path / "r.json")] + FAST))
    assert count_frames(out)[0] == N
    assert decoded == [str(folder / f"{t:05d}.jpg") for t in range(N)]
    check_results(str(tmp_path / "r.json"), N)


def test_lazy_video_file_frames_decode_in_order_and_keep_a_small_cache(tmp_path):
    from vis_d2.engine.video_io import VideoFileFrames

    src = str(tmp_path / "in.mp4")
    write_mp4(src, moving_square_frames())
    frames = VideoFileFrames(src, [], "RGB", cache_size=2)
    assert (len(frames), frames.height, frames.width) == (N, H, W)
    first = frames[0]
    assert tuple(first.shape) == (3, H, W)
    assert frames[N - 1].shape == first.shape and len(frames._cache) == 2
    assert np.array_equal(frames[0].numpy(), first.numpy())  # going back re-decodes from the start
    with pytest.raises(IndexError):
        frames[N]


def test_bad_inputs_end_in_one_clear_error(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "o.mp4")
    assert demo.main(["--config-file", CONFIG, "--input", str(tmp_path / "nope.mp4"), "--output", out] + FAST) == 1
    assert "nope.mp4 not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert demo.main(["--config-file", CONFIG, "--input", str(tmp_path / "empty"), "--output", out] + FAST) == 1
    assert "holds no frames" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    assert demo.main(["--config-file", CONFIG, "--input", str(tmp_path / "junk.mp4"), "--output", out] + FAST) == 1
    assert "Cannot read video" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    assert demo.main(["--config-file", CONFIG, "--input", str(tmp_path / "junk.mp4"), "--output", out] + FAST) == 1
    assert "needs PyAV: pip install av" in capsys.readouterr().err
    assert not os.path.exists(out)
