"""Train and test mappers (vis_d2/data/dataset_mapper.py) on tiny hand-made JPEG videos."""
import copy
import pickle

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import detection_utils
from detectron2.structures import BitMasks, BoxMode
from vis_d2.config import add_vis_config
from vis_d2.data.dataset_mapper import LazyVideoFrames, YTVISClipMapper, YTVISVideoMapper
from vis_d2.data.datasets import CorruptFrameError, MissingFrameError

H, W = 36, 64
LEFT_BOX, RIGHT_BOX = (4, 8, 16, 20), (40, 10, 56, 30)  # XYXY, in original pixels


def rle_of_box(x0, y0, x1, y1):
    m = np.zeros((H, W), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    rle = mask_util.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def anno(track_id, box, iscrowd=0, category_id=1):
    x0, y0, x1, y1 = box
    return {"id": track_id, "category_id": category_id, "bbox": [x0, y0, x1 - x0, y1 - y0],
            "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rle_of_box(*box), "iscrowd": iscrowd}


def make_video(tmp_path, annotations, video_id=5):
    """JPEG frames whose left half is red and right half black: a flip is visible in every frame."""
    files = []
    for t in range(len(annotations)):
        image = np.zeros((H, W, 3), dtype=np.uint8)
        image[:, : W // 2, 0] = 255
        path = tmp_path / f"v{video_id}_{t:03d}.jpg"
        Image.fromarray(image).save(path, quality=95)
        files.append(str(path))
    return {"video_id": video_id, "file_names": files, "height": H, "width": W,
            "length": len(files), "annotations": annotations, "has_annotations": True}


def two_tracks(length):
    # track 7 on the left, track 3 on the right, listed in a different order on odd frames
    return [[anno(7, LEFT_BOX), anno(3, RIGHT_BOX)] if t % 2 == 0 else [anno(3, RIGHT_BOX), anno(7, LEFT_BOX)]
            for t in range(length)]


def make_cfg(**overrides):
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (36, 54, 72)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.MIN_SIZE_TEST = 72
    cfg.INPUT.MAX_SIZE_TEST = 1000
    cfg.INPUT.RANDOM_FLIP = "horizontal"
    cfg.INPUT.SAMPLING_FRAME_NUM = 3
    cfg.INPUT.SAMPLING_SUPPORT_NUM = 1
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    return cfg


def is_flipped(image):
    """image: (3, h, w) RGB uint8; the red half is on the right after a horizontal flip."""
    red = image[0].float()
    w = red.shape[1]
    return bool(red[:, w // 2:].mean() > red[:, : w // 2].mean())


def clips(mapper, video, n=24):
    for seed in range(n):
        np.random.seed(seed)  # sampler and augmentations draw from numpy's global generator
        yield mapper(video)


def test_clip_dict_follows_the_interface(tmp_path):
    video = make_video(tmp_path, two_tracks(6))
    clip = YTVISClipMapper(make_cfg())(video)
    assert set(clip) == {"video_id", "height", "width", "frame_indices", "frame_roles", "file_names",
                         "image", "instances"}
    assert (clip["video_id"], clip["height"], clip["width"]) == (5, H, W)
    assert clip["frame_roles"] == ["key", "ref", "support"]
    assert clip["file_names"] == [video["file_names"][t] for t in clip["frame_indices"]]
    for image, inst in zip(clip["image"], clip["instances"]):
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        assert inst.image_size == tuple(image.shape[1:])
        assert inst.gt_ids.dtype == torch.int64 and isinstance(inst.gt_masks, BitMasks)


def test_image_channel_order_follows_input_format(tmp_path):
    video = make_video(tmp_path, two_tracks(3))
    np.random.seed(0)
    image = YTVISClipMapper(make_cfg(**{"INPUT.FORMAT": "BGR"}))(video)["image"][0]
    assert image[2].float().mean() > 100 and image[0].float().mean() < 20  # red lands in channel 2


def test_one_flip_and_one_scale_for_every_frame_of_a_clip(tmp_path):
    mapper = YTVISClipMapper(make_cfg())
    flips, sizes = set(), set()
    for clip in clips(mapper, make_video(tmp_path, two_tracks(8))):
        clip_flips = {is_flipped(im) for im in clip["image"]}
        clip_sizes = {tuple(im.shape) for im in clip["image"]}
        assert len(clip_flips) == 1 and len(clip_sizes) == 1
        flips |= clip_flips
        sizes |= clip_sizes
    assert flips == {True, False} and len(sizes) > 1  # the augmentation is random across clips


def test_boxes_follow_the_clip_transform_and_gt_ids_stay_aligned(tmp_path):
    mapper = YTVISClipMapper(make_cfg())
    for clip in clips(mapper, make_video(tmp_path, two_tracks(8))):
        for image, inst in zip(clip["image"], clip["instances"]):
            scale = image.shape[1] / H
            flipped = is_flipped(image)
            for track_id, (x0, y0, x1, y1) in [(7, LEFT_BOX), (3, RIGHT_BOX)]:
                if flipped:
                    x0, x1 = W - x1, W - x0
                expected = torch.tensor([x0, y0, x1, y1], dtype=torch.float32) * scale
                (row,) = (inst.gt_ids == track_id).nonzero()[:, 0].tolist()
                assert torch.allclose(inst.gt_boxes.tensor[row], expected, atol=1e-3)
                # the mask at that row is the same object as the box
                mask_box = inst.gt_masks[row : row + 1].get_bounding_boxes().tensor[0]
                assert torch.allclose(mask_box, expected, atol=1.5 * scale)


def test_crowd_instances_are_dropped_and_never_make_a_key_frame(tmp_path):
    annotations = [[anno(99, RIGHT_BOX, iscrowd=1)], [anno(1, LEFT_BOX), anno(99, RIGHT_BOX, iscrowd=1)],
                   [anno(99, RIGHT_BOX, iscrowd=1)]]
    mapper = YTVISClipMapper(make_cfg(**{"INPUT.SAMPLING_FRAME_NUM": 2, "INPUT.SAMPLING_SUPPORT_NUM": 1}))
    for clip in clips(mapper, make_video(tmp_path, annotations), n=8):
        assert clip["frame_indices"][0] == 1
        assert all(99 not in inst.gt_ids.tolist() for inst in clip["instances"])
        assert clip["instances"][0].gt_ids.tolist() == [1]


def test_empty_instances_are_filtered_with_gt_ids_in_sync(tmp_path):
    gone = {"id": 4, "category_id": 2, "bbox": [30, 10, 0, 0], "bbox_mode": BoxMode.XYWH_ABS,
            "segmentation": rle_of_box(0, 0, 0, 0), "iscrowd": 0}
    annotations = [[gone, anno(7, LEFT_BOX)]]
    mapper = YTVISClipMapper(make_cfg(**{"INPUT.SAMPLING_FRAME_NUM": 1, "INPUT.SAMPLING_SUPPORT_NUM": 0}))
    (inst,) = next(clips(mapper, make_video(tmp_path, annotations), n=1))["instances"]
    assert inst.gt_ids.tolist() == [7] and inst.gt_classes.tolist() == [1] and len(inst.gt_masks) == 1


def test_frame_without_instances_still_has_empty_masks_and_ids(tmp_path):
    annotations = [[anno(7, LEFT_BOX)], [], []]
    mapper = YTVISClipMapper(make_cfg(**{"INPUT.SAMPLING_FRAME_NUM": 3, "INPUT.SAMPLING_SUPPORT_NUM": 2}))
    clip = next(clips(mapper, make_video(tmp_path, annotations), n=1))
    assert clip["frame_indices"] == [0, 1, 2]
    for inst in clip["instances"][1:]:
        assert len(inst) == 0 and inst.gt_ids.dtype == torch.int64
        assert inst.gt_masks.tensor.shape == (0, *inst.image_size)


def test_polygon_mask_format_with_rle_annotations_gives_bitmasks(tmp_path):
    mapper = YTVISClipMapper(make_cfg(**{"INPUT.MASK_FORMAT": "polygon"}))
    clip = next(clips(mapper, make_video(tmp_path, two_tracks(4)), n=1))
    assert all(isinstance(inst.gt_masks, BitMasks) and len(inst) == 2 for inst in clip["instances"])


def test_mapper_leaves_the_dataset_dict_unchanged(tmp_path):
    video = make_video(tmp_path, two_tracks(4))
    before = copy.deepcopy(video)
    list(clips(YTVISClipMapper(make_cfg()), video, n=3))
    assert video == before


def test_missing_frame_raises_an_error_naming_video_and_frame(tmp_path):
    video = make_video(tmp_path, two_tracks(1), video_id=42)
    (tmp_path / "v42_000.jpg").unlink()
    with pytest.raises(MissingFrameError, match=r"Frame 0 of video 42 not found: .*v42_000\.jpg"):
        YTVISClipMapper(make_cfg())(video)


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "empty"])
def test_corrupt_frame_raises_one_line_naming_video_frame_and_file(tmp_path, damage):
    video = make_video(tmp_path, two_tracks(1), video_id=7)
    path = tmp_path / "v7_000.jpg"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 3], "not_an_image": b"<html>404</html>", "empty": b""}[damage])
    with pytest.raises(CorruptFrameError) as info:
        YTVISClipMapper(make_cfg())(video)
    message = str(info.value)
    assert "Frame 0 of video 7 cannot be decoded" in message and str(path) in message and "\n" not in message
    assert isinstance(info.value, OSError)


def test_frame_of_wrong_size_is_reported(tmp_path):
    video = make_video(tmp_path, two_tracks(1))
    video["height"] = H + 2
    with pytest.raises(detection_utils.SizeMismatchError, match="frame 0 of video 5"):
        YTVISClipMapper(make_cfg())(video)


# ---------------------------------------------------------------- test mapper


def counting_reads(monkeypatch):
    reads = []
    original = detection_utils.read_image

    def read_image(file_name, format=None):
        reads.append(file_name)
        return original(file_name, format=format)

    monkeypatch.setattr(detection_utils, "read_image", read_image)
    return reads


def test_video_mapper_reads_no_frame_until_indexed_then_only_that_frame(tmp_path, monkeypatch):
    reads = counting_reads(monkeypatch)
    video = make_video(tmp_path, [[]] * 5)
    out = YTVISVideoMapper(make_cfg())(video)
    assert reads == []
    assert (out["video_id"], out["height"], out["width"], out["length"]) == (5, H, W, 5)
    frame = out["image"][3]
    assert reads == [video["file_names"][3]]
    assert frame.dtype == torch.uint8 and frame.shape == (3, 72, 128)  # MIN_SIZE_TEST 72: scale 2


def test_lazy_frames_index_like_a_sequence_and_slice_lazily(tmp_path, monkeypatch):
    reads = counting_reads(monkeypatch)
    video = make_video(tmp_path, [[]] * 5)
    frames = YTVISVideoMapper(make_cfg())(video)["image"]
    assert len(frames) == 5
    tail = frames[3:]
    assert isinstance(tail, LazyVideoFrames) and len(tail) == 2 and reads == []
    assert torch.equal(tail[-1], frames[4])
    assert reads == [video["file_names"][4]] * 2
    with pytest.raises(IndexError):
        frames[5]
    assert len(list(frames)) == 5


def test_lazy_frames_survive_pickling(tmp_path):
    video = make_video(tmp_path, [[]] * 3)
    frames = YTVISVideoMapper(make_cfg())(video)["image"]
    restored = pickle.loads(pickle.dumps(frames))
    assert len(restored) == 3 and torch.equal(restored[1], frames[1])


def test_lazy_frames_missing_file_names_video_and_frame(tmp_path):
    video = make_video(tmp_path, [[]] * 3, video_id=8)
    (tmp_path / "v8_002.jpg").unlink()
    frames = YTVISVideoMapper(make_cfg())(video)["image"]
    frames[0]
    with pytest.raises(MissingFrameError, match="Frame 2 of video 8 not found"):
        frames[2]
