#!/usr/bin/env python3
"""Install detectron2 into the running Python environment when it is not importable yet.

detectron2 is not on PyPI under its own name. Users with internet and a CUDA toolchain should build the
official release from source (see README); this script is the offline fallback used by ``make``:

1. download the ``pb1-detectron2==0.6`` sdist (its Python tree is detectron2 v0.6, minus the C++/CUDA
   sources in ``detectron2/layers/csrc``);
2. build it without extension modules, dropping the ``black`` pin (a formatter, unused at run time);
3. add a pure-Python ``detectron2/_C.py`` placeholder: v0.6 imports ``_C`` eagerly, and
   ``collect_env_info()`` asks it for three version strings. Only the ops we never call (rotated boxes,
   detectron2's own DeformConv, the C++ COCOeval) are missing; torchvision provides roi_align and nms.

Pins: ``Pillow<10`` (v0.6 uses ``Image.LINEAR``) and ``setuptools<81`` (v0.6 imports ``pkg_resources``).
"""
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tarfile

SDIST = "pb1-detectron2==0.6"
PLACEHOLDER_C = '''"""Placeholder for detectron2's compiled ops, written by vis_d2's tools/install_detectron2.py.

This detectron2 was installed without its C++/CUDA extension. Rotated-box ops, detectron2.layers.DeformConv
and the C++ COCOeval are unavailable; everything vis_d2 uses runs on torchvision ops.
"""


def get_compiler_version():
    return "not built"


def get_cuda_version():
    return "not built"


def has_cuda():
    return False
'''


def pip(*args):
    subprocess.check_call([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args])


def main():
    if importlib.util.find_spec("detectron2") is not None:
        import detectron2

        print(f"detectron2 {detectron2.__version__} already importable from {detectron2.__path__[0]}")
        return
    cache = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".cache/detectron2")
    os.makedirs(cache, exist_ok=True)
    print(f"Installing detectron2 v0.6 (Python only) from the {SDIST} sdist into {sys.prefix}")
    # Run-time pins first, so detectron2's own requirements are already satisfied by them.
    pip("install", "Pillow<10", "setuptools<81", "wheel")
    archives = glob.glob(os.path.join(cache, "pb1-detectron2-0.6.tar.gz"))
    if not archives:
        # --no-build-isolation: the sdist's setup.py imports torch, which is installed already.
        pip("download", "--no-deps", "--no-build-isolation", SDIST, "-d", cache)
        archives = glob.glob(os.path.join(cache, "pb1-detectron2-0.6.tar.gz"))
    src = os.path.join(cache, "pb1-detectron2-0.6")
    if not os.path.isdir(src):
        with tarfile.open(archives[0]) as tar:
            tar.extractall(cache)
    setup_py = os.path.join(src, "setup.py")
    with open(setup_py) as f:
        text = f.read()
    text = text.replace("ext_modules=get_extensions(),", "ext_modules=[],")
    text = re.sub(r'\n\s*"black==[^"]*",', "", text)
    with open(setup_py, "w") as f:
        f.write(text)
    with open(os.path.join(src, "detectron2", "_C.py"), "w") as f:
        f.write(PLACEHOLDER_C)
    pip("install", "--no-build-isolation", src)
    subprocess.check_call([sys.executable, "-c", "import detectron2, detectron2.modeling; print('detectron2', detectron2.__version__, 'installed')"])


if __name__ == "__main__":
    main()
