"""The one exception type of this project: bad input or environment, explained."""

from __future__ import annotations


class BirdsOnnxError(Exception):
    """Bad input or environment (a model file, an image, a param, a class with too few images);
    the message names the problem and what to do about it. Anything else is a bug."""


class ModelError(BirdsOnnxError):
    """A model file that is missing, broken or not one of ours."""
