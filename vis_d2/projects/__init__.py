"""Method packages, importable as ``vis_d2.projects.<name>``.

A regular install copies ``projects/<Folder>/<name>`` here (see setup.py). In a source checkout (the
editable install that ``make`` does), the finder below resolves the same names to the folders under
``projects/`` so that edits there take effect without reinstalling.
"""
import importlib
import importlib.abc
import importlib.util
import os

# package name -> (folder under projects/, the package's config function); setup.py reads this table too
PROJECTS = {
    "masktrack_rcnn": ("MaskTrackRCNN", "add_masktrack_config"),
    "tfa": ("TFA", "add_tfa_config"),
    "stmask": ("STMask", "add_stmask_config"),
}
_PROJECTS_ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "projects")


class _SourceTreeProjectFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        prefix = __name__ + "."
        if not fullname.startswith(prefix):
            return None
        name = fullname[len(prefix):]
        if "." in name or name not in PROJECTS:
            return None
        init = os.path.join(_PROJECTS_ROOT, PROJECTS[name][0], name, "__init__.py")
        if not os.path.isfile(init):
            return None
        return importlib.util.spec_from_file_location(
            fullname, os.path.normpath(init), submodule_search_locations=[os.path.dirname(os.path.normpath(init))]
        )


def add_project_configs(cfg):
    """Import every method package (registering its models) and add its config keys to ``cfg``."""
    for name, (_, config_fn) in PROJECTS.items():
        module = importlib.import_module(f"{__name__}.{name}")
        getattr(module, config_fn)(cfg)


if os.path.isdir(_PROJECTS_ROOT):
    import sys

    sys.meta_path.append(_SourceTreeProjectFinder())
