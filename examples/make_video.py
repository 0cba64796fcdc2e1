"""Write a 20-second test video (H.264 in MP4, 640x368 at 25 fps) to try the walkthrough
on when you have no video at hand: ``python examples/make_video.py match.mp4``."""

import sys

from localckpt.testing.videos import write_video

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "match.mp4"
    write_video(path, 500, fps=25.0, size=(640, 368))
    print(f"wrote {path}")
