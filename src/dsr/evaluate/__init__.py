"""Evaluation harness: datasets, models, prompts, letter parsing, scoring, statistics, reports."""
