"""Geometry Selection Module on Qwen2.5-VL (needs the ``model`` extra: torch, transformers)."""
