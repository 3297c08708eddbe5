"""Scene record → multiple-choice 4D questions with procedural answers."""
