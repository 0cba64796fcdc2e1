"""The label file formats and frame-number modes of ``localckpt.labels``, in a module of
their own so that the command line can offer them without importing the readers."""

from __future__ import annotations

__all__ = ["FORMATS", "FRAME_MODES"]

#: label file formats read and written
FORMATS = ("coco", "yolo", "mot")
#: how a file's frame numbers are matched to a timeline's (see localckpt.labels)
FRAME_MODES = ("sequence", "source")
