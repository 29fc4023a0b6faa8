"""tools/visualize_tracks.py: one animated frame per video frame, each track's mask tinted in its own color."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageSequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "visualize_tracks.py")


def test_ground_truth_overlay_has_every_frame_and_tints_the_objects(tmp_path):
    data = tmp_path / "synth_vis"
    subprocess.run(
        [sys.executable, "-m", "vis_d2.data.synthetic", "--out", str(data), "--videos", "1", "--val-videos", "1",
         "--seed", "3", "--height", "64", "--width", "96", "--frames", "5", "--workers", "1"],
        check=True, cwd=REPO, capture_output=True,
    )
    gt_json, image_root = str(data / "valid.json"), str(data / "valid" / "JPEGImages")
    out = tmp_path / "gt.gif"
    proc = subprocess.run(
        [sys.executable, TOOL, "--gt-json", gt_json, "--image-root", image_root, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(gt_json) as f:
        gt = json.load(f)
    video = gt["videos"][0]
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(out))]
    assert len(frames) == len(video["file_names"])
    plain = np.asarray(Image.open(os.path.join(image_root, video["file_names"][0])).convert("RGB"))
    assert frames[0].shape == plain.shape
    # Pixels inside an annotated mask change colour; the tool draws nothing where no object is.
    from vis_d2.utils.rle import segmentation_to_mask

    anns = [a for a in gt["annotations"] if a["video_id"] == video["id"]]
    masks = [segmentation_to_mask(a["segmentations"][0], video["height"], video["width"]) for a in anns]
    inside = np.any([m for m in masks if m is not None], axis=0)
    diff = np.abs(frames[0].astype(int) - plain.astype(int)).sum(-1)
    assert inside.any() and diff[inside].mean() > 3 * diff[~inside].mean()


def test_unknown_video_id_is_a_clear_error(tmp_path):
    gt = {"videos": [{"id": 1, "file_names": [], "height": 8, "width": 8}], "categories": [], "annotations": []}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    proc = subprocess.run(
        [sys.executable, TOOL, "--gt-json", str(path), "--image-root", str(tmp_path), "--video-id", "7",
         "--out", str(tmp_path / "x.gif")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode != 0 and "video id 7" in proc.stderr
