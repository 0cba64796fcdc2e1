"""Write a 20-second test video (H.264 in MP4, 640x368 at 25 fps) to try the walkthrough
on when you have no video at hand, and its ground truth: a COCO label file of every fifth
frame, numbered by source frame as labelling tools such as CVAT write them:
``python examples/make_video.py match.mp4`` writes match.mp4 and match.labels.json."""

import json
import sys
from pathlib import Path

from detect_tries import detect

from localckpt.testing.videos import frame_image, write_video

FRAMES, FPS, SIZE = 500, 25.0, (640, 368)
TRUE_THRESHOLD = 0.7  # the truth: what the toy detector finds at 0.7, boxes in place
LABELLED_EVERY = 5  # annotators label one frame in five

if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "match.mp4")
    write_video(path, FRAMES, fps=FPS, size=SIZE)
    categories = {"ball": 1, "player": 2}
    images, annotations = [], []
    for i in range(0, FRAMES, LABELLED_EVERY):
        images.append({"id": i + 1, "file_name": f"frame_{i:06d}.jpg", "width": SIZE[0],
                       "height": SIZE[1]})
        for box in detect(frame_image(i, *SIZE), TRUE_THRESHOLD):
            x1, y1, x2, y2 = box["box"]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": categories[box["label"]],
                                "bbox": [x1, y1, x2 - x1, y2 - y1]})
    labels = path.with_suffix(".labels.json")
    labels.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": v, "name": k} for k, v in categories.items()]}))
    print(f"wrote {path} and {labels}")
