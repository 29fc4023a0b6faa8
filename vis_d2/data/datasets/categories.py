"""Official class lists of the builtin video datasets, in dataset-id order (the first name has id 1).

They are hard-coded because models read the class count from the metadata before any json is loaded.
The loader still compares them with the json's ``categories`` and warns (then follows the json) if they
disagree, e.g. for a re-annotated release.
"""
from typing import Dict, Sequence

__all__ = [
    "YTVIS_2019_CLASSES",
    "YTVIS_2021_CLASSES",
    "OVIS_CLASSES",
    "metadata_from_class_names",
]

# YouTube-VIS 2019 (ids 1..40), in the order of the official train.json.
YTVIS_2019_CLASSES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake", "monkey",
    "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck", "zebra",
    "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle", "earless_seal", "tennis_racket",
)  # fmt: skip

# YouTube-VIS 2021 (ids 1..40): a different list from 2019, alphabetical.
YTVIS_2021_CLASSES = (
    "airplane", "bear", "bird", "boat", "car", "cat", "cow", "deer", "dog", "duck",
    "earless_seal", "elephant", "fish", "flying_disc", "fox", "frog", "giant_panda", "giraffe", "horse", "leopard",
    "lizard", "monkey", "motorbike", "mouse", "parrot", "person", "rabbit", "shark", "skateboard", "snake",
    "snowboard", "squirrel", "surfboard", "tennis_racket", "tiger", "train", "truck", "turtle", "whale", "zebra",
)  # fmt: skip

# OVIS (ids 1..25); "Vehical" is the official spelling.
OVIS_CLASSES = (
    "Person", "Bird", "Cat", "Dog", "Horse", "Sheep", "Cow", "Elephant", "Bear", "Zebra",
    "Giraffe", "Poultry", "Giant_panda", "Lizard", "Parrot", "Monkey", "Rabbit", "Tiger", "Fish", "Turtle",
    "Bicycle", "Motorcycle", "Airplane", "Boat", "Vehical",
)  # fmt: skip


def metadata_from_class_names(class_names: Sequence[str]) -> Dict[str, object]:
    """
    Metadata for a class list whose dataset ids are 1..K in list order.

    Args:
        class_names: K class names; the i-th has dataset id i + 1.

    Returns:
        dict with ``thing_classes`` (list of K names) and ``thing_dataset_id_to_contiguous_id``
        ({1: 0, ..., K: K - 1}).
    """
    return {
        "thing_classes": list(class_names),
        "thing_dataset_id_to_contiguous_id": {i + 1: i for i in range(len(class_names))},
    }
