"""Synthetic 4D worlds rendered with MuJoCo, with exact ground-truth scene records."""
