"""One config try of a toy detect stage: ``python examples/detect_tries.py THRESHOLD``.

Run several at once (one process per try): the embedded store takes their saves
together. Each try is a scenario under the root of the newest timeline, tagged
``thr-THRESHOLD`` so that the CLI can name it. The output is frame-keyed (see "Looking at
results" in the README), so `localckpt diff --frames` and `localckpt serve` read it per
frame.
"""

import sys

import localckpt

threshold = float(sys.argv[1])
with localckpt.open() as store:
    timeline = max(store.list_timelines(), key=lambda t: t.created_at)
    frames = []
    for frame in store.iter_frames(timeline.id):
        # "detect" the bright columns of the picture: a stand-in for a real model whose
        # recall falls as its threshold rises
        columns = frame.image.mean(axis=(0, 2)) / 255.0
        detections = []
        for i, x in enumerate(range(0, len(columns) - 64, 128)):
            score = round(float(columns[x:x + 64].mean()), 3)
            if score >= threshold / 2:
                shift = round(threshold * 10)  # the tries also place boxes a little apart
                detections.append({"box": [x + shift, 10, x + shift + 64, 90],
                                   "label": "player" if i % 2 else "ball", "score": score})
        frames.append({"sequence": frame.sequence, "detections": detections})
    checkpoint = store.save_stage_output(
        timeline.id, None, "detect", {"frames": frames},
        config_overrides={"threshold": threshold},
        stats={"boxes": sum(len(f["detections"]) for f in frames)},
        is_scenario=True, scenario_label=f"thr={threshold}",
    )
    store.tag(checkpoint, f"thr-{threshold}")
    print(f"thr={threshold}: checkpoint {checkpoint}")
