"""localckpt: a local-first store for video-pipeline state."""
