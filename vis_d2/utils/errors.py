"""The error raised for malformed YouTube-VIS input, wherever it is read.

One class serves the dataset loader (:mod:`vis_d2.data.datasets.ytvis`), the evaluation's input checks
(:mod:`vis_d2.evaluation.ytvis_io`) and the tools, so ``except YTVISFormatError`` catches a bad dataset
json, a bad ground truth and a bad results file alike. Standard library only: the evaluation CLI imports
it without torch or detectron2.
"""
from typing import Optional

__all__ = ["YTVISFormatError"]


class YTVISFormatError(ValueError):
    """Malformed YouTube-VIS input (annotation json, ground truth or results).

    ``str(err)`` is a single line meant for the user: it names the file part, the entry and, where known,
    the video and frame. The optional attributes say the same for programs (None where unknown).

    Attributes:
        json_file: the file at fault.
        video_id, annotation_id, frame_idx: the video, annotation (track) and frame at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        json_file: Optional[str] = None,
        video_id=None,
        annotation_id=None,
        frame_idx: Optional[int] = None,
    ):
        super().__init__(message)
        self.json_file = json_file
        self.video_id = video_id
        self.annotation_id = annotation_id
        self.frame_idx = frame_idx

    @classmethod
    def in_file(cls, json_file: str, problem: str, video_id=None, annotation_id=None, frame_idx=None):
        """The loader's form: ``Malformed YouTube-VIS json 'F', video V, annotation A, frame T: problem``."""
        where = [f"'{json_file}'"]
        for label, value in (("video", video_id), ("annotation", annotation_id), ("frame", frame_idx)):
            if value is not None:
                where.append(f"{label} {value}")
        return cls(
            f"Malformed YouTube-VIS json {', '.join(where)}: {problem}",
            json_file=json_file,
            video_id=video_id,
            annotation_id=annotation_id,
            frame_idx=frame_idx,
        )
