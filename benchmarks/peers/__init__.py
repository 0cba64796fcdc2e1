"""Baselines measured in the same run as the store.

- pillow: bare Pillow JPEG encode / decode, the physical limit for frame ingest and load.
- langgraph: LangGraph's SqliteSaver / PostgresSaver ``put`` (optional packages).
- seed: the seed service's layout (one object per frame; each checkpoint a row copying
  every earlier output).
"""
