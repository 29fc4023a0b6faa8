"""Build a vis_d2 config from a file and ``KEY VALUE`` overrides, with one clear message per mistake.

yacs (under detectron2's ``CfgNode``) reports an unknown key as ``Non-existent config key: X`` and a wrong
value type as ``Type mismatch (<class 'float'> vs. <class 'int'>) ...``; neither says where the key came
from or what was probably meant. :func:`build_config` turns these, a missing or malformed file and an odd
number of overrides into one :class:`ConfigError` each, naming the key, its source and, for an unknown key,
the closest known key.
"""
import difflib
import os
import re
from typing import List, Optional, Sequence

import yaml
from detectron2.config import CfgNode, get_cfg

__all__ = ["ConfigError", "build_config", "closest_config_key", "all_config_keys"]


class ConfigError(ValueError):
    """A config file or override that cannot be merged; the message says which key and why."""


def all_config_keys(cfg: CfgNode, prefix: str = "") -> List[str]:
    """Every leaf key of ``cfg`` as a dotted name, e.g. ``SOLVER.BASE_LR``."""
    keys = []
    for name, value in cfg.items():
        full = f"{prefix}{name}"
        keys.extend(all_config_keys(value, full + ".") if isinstance(value, CfgNode) else [full])
    return keys


def closest_config_key(cfg: CfgNode, key: str) -> Optional[str]:
    """The known key most similar to ``key`` (difflib), or None when nothing is close."""
    known = all_config_keys(cfg)
    match = difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.6)
    if match:
        return match[0]
    # A right leaf name under a wrong group (e.g. MODEL.BASE_LR): compare the last part alone.
    leaf = key.upper().rsplit(".", 1)[-1]
    by_leaf = {k.rsplit(".", 1)[-1]: k for k in known}
    match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.8)
    return by_leaf[match[0]] if match else None


def _lookup(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


_UNKNOWN = re.compile(r"Non-existent (?:config )?key: (\S+)")
_TYPE = re.compile(r"Type mismatch \((.+?) vs\. (.+?)\) with values \((.*) vs\. (.*)\) for config key: (\S+)", re.S)


def _type_name(text: str) -> str:
    m = re.search(r"'([^']+)'", text)
    return m.group(1) if m else text


def _a(type_name: str) -> str:
    return ("an " if type_name[:1] in "aeiou" else "a ") + type_name


def _explain(cfg: CfgNode, error: Exception, source: str) -> Optional[ConfigError]:
    text = str(error.args[0]) if error.args else str(error)
    m = _UNKNOWN.search(text)
    if m:
        key = m.group(1)
        close = closest_config_key(cfg, key)
        hint = f"; did you mean {close}?" if close else "; no known key is close to it"
        return ConfigError(f"Unknown config key {key} in {source}{hint}")
    m = _TYPE.search(text)
    if m:
        want, got, default, value, key = m.groups()
        want, got = _type_name(want), _type_name(got)
        hint = f" (write {value}.0)" if (want, got) == ("float", "int") else ""
        return ConfigError(
            f"Config key {key} in {source} takes {_a(want)} (default {default}), but got {value} ({_a(got)}){hint}"
        )
    return None


def default_config() -> CfgNode:
    """detectron2's default config with every vis_d2 and method key at its default (not frozen)."""
    from vis_d2.config import add_vis_config
    from vis_d2.projects import add_project_configs

    cfg = get_cfg()
    add_vis_config(cfg)
    add_project_configs(cfg)
    return cfg


def build_config(config_file: str, opts: Sequence[str] = (), *, freeze: bool = True) -> CfgNode:
    """detectron2's default config + every vis_d2 and method key, merged with a file and overrides.

    Args:
        config_file: a yaml config (``_BASE_`` inheritance allowed).
        opts: ``[KEY, VALUE, KEY, VALUE, ...]`` as detectron2 tools take them on the command line.
        freeze: freeze the returned config.

    Raises:
        ConfigError: missing/invalid file, unknown key, wrong value type, odd number of overrides.
    """
    cfg = default_config()
    if not os.path.isfile(config_file):
        raise ConfigError(f"Config file {config_file} does not exist")
    try:
        cfg.merge_from_file(config_file)
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file {config_file} (or a _BASE_ of it) is not valid YAML: {e}") from None
    except FileNotFoundError as e:
        raise ConfigError(f"Config file {config_file}: {e}") from None
    except (KeyError, ValueError, AssertionError) as e:
        explained = _explain(cfg, e, f"config file {config_file} (or a _BASE_ of it)")
        if explained is None:
            raise
        raise explained from None
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(
            f"Config overrides come in KEY VALUE pairs, got {len(opts)} words: {' '.join(map(str, opts))}"
        )
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as e:
        explained = _explain(cfg, e, "the command-line overrides")
        if explained is None:
            raise
        raise explained from None
    if freeze:
        cfg.freeze()
    return cfg
