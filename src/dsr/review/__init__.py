"""``dsr.review``: people verify and fix benchmark questions in a web app, with an audit trail.

The stage after ``evaluate``: ``dsr review import`` loads question files (any format
:mod:`dsr.evaluate.datasets` reads) into a database, ``dsr review serve`` runs the app where
reviewers accept, correct, edit, reject or flag each question with the keyboard, and
``dsr review export`` writes the accepted and edited items in the DSR-Bench schema with provenance.

Modules: ``decisions`` (what a verdict may be, item outcomes), ``db`` (tables, SQLite WAL set-up),
``auth`` (tokens, sessions, login links), ``store`` (every read and write, with its audit event),
``agreement`` (Cohen's / Fleiss' κ, label precision), ``media`` (interval, boxes, frames, quantity
plot), ``app`` (FastAPI pages and JSON API), ``export``, ``server`` (uvicorn), ``demo``.
See ``docs/review.md``. Importing this package loads no web framework.
"""
