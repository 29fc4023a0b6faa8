"""Config mistakes end in one message that names the key, where it came from and what was probably meant."""
import os

import pytest

from vis_d2.engine import ConfigError, build_config

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "synth_vis",
                      "masktrack_rcnn_tiny.yaml")


@pytest.mark.parametrize(
    "opts, message",
    [
        (["SOLVER.MAX_ITERS", "3"], "Unknown config key SOLVER.MAX_ITERS in the command-line overrides; "
                                    "did you mean SOLVER.MAX_ITER?"),
        (["MODEL.ROI_HEADS.NUM_CLASS", "3"], "did you mean MODEL.ROI_HEADS.NUM_CLASSES?"),
        (["MODEL.TRACKER.EMBED_WIEGHT", "0.0"], "did you mean MODEL.TRACKER.EMBED_WEIGHT?"),
        (["MODEL.BASE_LR", "0.1"], "did you mean SOLVER.BASE_LR?"),  # right leaf, wrong group
        (["SOLVER.BASE_LR", "1"], "Config key SOLVER.BASE_LR in the command-line overrides takes a float "
                                  "(default 0.001), but got 1 (an int) (write 1.0)"),
        (["SOLVER.MAX_ITER", "many"], "takes an int (default 500), but got many (a str)"),
        (["SOLVER.MAX_ITER"], "Config overrides come in KEY VALUE pairs, got 1 words"),
    ],
)
def test_bad_override_gives_one_clear_message(opts, message):
    with pytest.raises(ConfigError) as info:
        build_config(CONFIG, opts)
    assert message in str(info.value)


def test_unknown_key_in_a_file_names_the_file_and_the_closest_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(f"_BASE_: {CONFIG}\nMODEL:\n  TRACK_HEAD:\n    FC_DIMS: 64\n")
    with pytest.raises(ConfigError, match=r"Unknown config key MODEL.TRACK_HEAD.FC_DIMS in config file .*mine.yaml"
                                          r".*did you mean MODEL.TRACK_HEAD.FC_DIM\?"):
        build_config(str(path))


def test_missing_or_malformed_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  MAX_ITER: [3\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        build_config(str(bad))


def test_good_config_merges_and_freezes():
    cfg = build_config(CONFIG, ["SOLVER.MAX_ITER", "7", "SOLVER.BASE_LR", "0.5"])
    assert cfg.SOLVER.MAX_ITER == 7 and cfg.SOLVER.BASE_LR == 0.5 and cfg.is_frozen()
