"""One config try of a toy detect stage: ``python examples/detect_tries.py THRESHOLD``.

Run several at once (one process per try): the embedded store takes their saves
together. Each try is a scenario under the root of the newest timeline, tagged
``thr-THRESHOLD`` so that the CLI can name it; run again, it saves a new try and moves
that tag to it (the earlier try stays in the tree, untagged). The output is frame-keyed
(see docs/results.md), so `localckpt diff --frames`, `localckpt compare` and `localckpt
serve` read it per frame. A real stage of many frames runs as a stage run (docs/runs.md): it
resumes after a crash, spreads over workers and skips frames already computed.
"""

import sys

import numpy as np

import localckpt


def detect(image: np.ndarray, threshold: float, shift: int = 0) -> list[dict]:
    """"Detect" the bright columns of the picture: a stand-in for a real model whose
    recall falls as its threshold rises. shift moves the boxes right (a worse model)."""
    columns = image.mean(axis=(0, 2)) / 255.0
    found = []
    for i, x in enumerate(range(0, len(columns) - 64, 128)):
        score = round(float(columns[x:x + 64].mean()), 3)
        if score >= threshold / 2:
            found.append({"box": [x + shift, 10, x + shift + 64, 90],
                          "label": "player" if i % 2 else "ball", "score": score})
    return found


def _misplaced(threshold: float) -> int:
    """How far this try's boxes land from the truth: the toy's settings far from 0.6 also
    place boxes worse (as a real model's localisation varies between configs)."""
    return round(abs(threshold - 0.6) * 30)


if __name__ == "__main__":
    threshold = float(sys.argv[1])
    with localckpt.open() as store:
        timeline = max(store.list_timelines(), key=lambda t: t.created_at)
        frames = [{"sequence": f.sequence,
                   "detections": detect(f.image, threshold, shift=_misplaced(threshold))}
                  for f in store.iter_frames(timeline.id)]
        checkpoint = store.save_stage_output(
            timeline.id, None, "detect", {"frames": frames},
            config_overrides={"threshold": threshold},
            stats={"boxes": sum(len(f["detections"]) for f in frames)},
            is_scenario=True, scenario_label=f"thr={threshold}",
        )
        # force=True moves the tag if an earlier run of this threshold set it: the tag
        # names the newest try (without it a second run fails here, ConflictError)
        store.tag(checkpoint, f"thr-{threshold}", force=True)
        # the short id, as `localckpt tree` shows it and any command takes it
        print(f"thr={threshold}: checkpoint {store.short_id(checkpoint)}, tagged "
              f"thr-{threshold}")
