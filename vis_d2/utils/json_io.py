"""Reading large json files fast: orjson when it is installed (``pip install vis_d2[fast]``), else json.

Both give the same Python objects for any valid json (orjson parses numbers with correct rounding, as
json does), so results never depend on which one ran. orjson rejects a few things that Python's json
accepts (``NaN`` / ``Infinity`` literals, integers beyond 64 bits); such files are parsed again with json,
so that every caller sees json's behaviour and json's error messages.
"""
import json

try:  # optional: about 3x faster on the 100 MB results files of long videos
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None

__all__ = ["HAVE_ORJSON", "loads", "load_file", "looks_truncated"]

HAVE_ORJSON = orjson is not None


def loads(data: bytes):
    """Parse json ``data`` (bytes or str).

    Raises:
        json.JSONDecodeError: invalid json (also for orjson's errors: they subclass it).
        UnicodeDecodeError: bytes that are not UTF-8/16/32.
    """
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # fall through: json decides, and words the error
    return json.loads(data)


def load_file(path: str):
    """Read and parse a json file (a local path). Raises OSError and the errors of :func:`loads`."""
    with open(path, "rb") as f:
        return loads(f.read())


def looks_truncated(err: Exception, data: bytes) -> bool:
    """Whether a json error means the data stops early (a cut-off download or an interrupted write)."""
    if "Unterminated string" in str(err):
        return True
    pos = getattr(err, "pos", None)
    return pos is not None and pos >= len(data.rstrip()) - 1
