"""vis_d2: video instance segmentation on Detectron2.

Method packages live in ``projects/<Method>/<package>`` and install as ``vis_d2.projects.<package>``
(the way detectron2 installs its own projects).
"""
import os
import sys

from setuptools import find_packages, setup

# The table of method packages lives in vis_d2/projects/__init__.py (standard library only, safe to import
# here); it maps each package name under vis_d2.projects to its folder inside projects/.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vis_d2.projects import PROJECTS  # noqa: E402


def read_version():
    with open(os.path.join("vis_d2", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip('"')
    raise RuntimeError("no __version__ in vis_d2/__init__.py")


project_packages = {
    f"vis_d2.projects.{name}": os.path.join("projects", folder, name)
    for name, (folder, _) in PROJECTS.items()
    if os.path.isdir(os.path.join("projects", folder, name))
}

setup(
    name="vis_d2",
    version=read_version(),
    description="Video instance segmentation (MaskTrack R-CNN, TFA, CompFeat, STMask, HITF) on Detectron2",
    packages=find_packages(include=("vis_d2", "vis_d2.*")) + list(project_packages),
    package_dir=project_packages,
    python_requires=">=3.8",
    # torch, torchvision and detectron2 are installed by tools/setup_env.sh (see README):
    # they have no single pip requirement that works everywhere.
    install_requires=["numpy", "pycocotools>=2.0.2", "Pillow", "tqdm"],
    # video: tools/demo_video.py reads and writes video files with PyAV (FFmpeg inside its wheels); a folder
    # of frames needs nothing more. fast: orjson reads the large results files of long videos about 3x faster
    # (results identical; vis_d2.utils.json_io falls back to json without it). dev: what `make test` needs,
    # both of them included so that the tests cover both paths.
    extras_require={"video": ["av>=10"], "fast": ["orjson"], "dev": ["pytest", "av>=10", "orjson"]},
)
