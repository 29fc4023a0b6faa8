"""Clips from the real train mapper batch by role (clip_frame_slots), also with INPUT.SAMPLING_FRAME_SHUFFLE."""
import numpy as np
import pycocotools.mask as mask_util
import torch
from detectron2.config import get_cfg
from detectron2.structures import BoxMode, ImageList
from PIL import Image

from vis_d2.config import add_vis_config
from vis_d2.data.dataset_mapper import YTVISClipMapper
from vis_d2.modeling.meta_arch import clip_frame_slots, split_frame_batches

H, W, LENGTH = 24, 32, 12


def _video(tmp_path):
    """LENGTH JPEG frames, each with one annotated square whose x position is the frame index."""
    files, annotations = [], []
    for t in range(LENGTH):
        image = np.zeros((H, W, 3), dtype=np.uint8)
        mask = np.zeros((H, W), dtype=np.uint8)
        mask[4:12, t : t + 8] = 1
        image[mask > 0] = 200
        path = tmp_path / f"{t:03d}.jpg"
        Image.fromarray(image).save(path, quality=95)
        files.append(str(path))
        rle = mask_util.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
        annotations.append([{"id": 1, "category_id": 0, "bbox": [t, 4, 8, 8], "bbox_mode": BoxMode.XYWH_ABS,
                             "segmentation": rle, "iscrowd": 0}])  # fmt: skip
    return {"video_id": 3, "file_names": files, "height": H, "width": W, "length": LENGTH,
            "annotations": annotations, "has_annotations": True}  # fmt: skip


def _mapper(shuffle):
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (H,), 1000
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.INPUT.SAMPLING_FRAME_NUM = 5  # key + 2 references + 2 supports
    cfg.INPUT.SAMPLING_SUPPORT_NUM = 2
    cfg.INPUT.SAMPLING_FRAME_SHUFFLE = shuffle
    return YTVISClipMapper(cfg)


def test_shuffled_key_ref_support_clips_share_one_role_layout_per_batch(tmp_path):
    video, mapper = _video(tmp_path), _mapper(shuffle=True)
    batch = []
    for seed in range(8):
        np.random.seed(seed)  # the sampler draws from numpy's global generator
        batch.append(mapper(video))
    assert clip_frame_slots(batch) == {"key": [0], "ref": [1, 2], "support": [3, 4]}
    # The shuffle is on: within a role, frames are not always in time order.
    ref_pairs = [clip["frame_indices"][1:3] for clip in batch]
    assert any(a > b for a, b in ref_pairs) and any(a < b for a, b in ref_pairs)
    # Cut into frame slots, each slot's images and targets are that slot's frame of every clip (the
    # square sits at x = frame index).
    frames = [clip["image"][s].float() for s in range(5) for clip in batch]
    images = ImageList.from_tensors(frames)
    slots = split_frame_batches(images, {"p2": images.tensor}, batch, torch.device("cpu"))
    for s, slot in enumerate(slots):
        for clip, image, targets in zip(batch, slot.images.tensor, slot.targets):
            t = clip["frame_indices"][s]
            assert targets.gt_boxes.tensor[0, 0].item() == t
            assert torch.equal(image, clip["image"][s].float())


def test_role_layout_stays_time_ordered_without_shuffle(tmp_path):
    video, mapper = _video(tmp_path), _mapper(shuffle=False)
    np.random.seed(0)
    clip = mapper(video)
    assert clip["frame_roles"] == ["key", "ref", "ref", "support", "support"]
    refs, supports = clip["frame_indices"][1:3], clip["frame_indices"][3:]
    assert refs == sorted(refs) and supports == sorted(supports)
