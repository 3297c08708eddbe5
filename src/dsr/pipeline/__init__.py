"""Video folder → curated clips → scene records → questions, as one resumable run (locally or on Ray).

* :mod:`dsr.pipeline.executors` — where the tasks run (serial here, or Ray with resource hints);
* :mod:`dsr.pipeline.run` — the per-video chains, the journal, the outputs and the report.

This stage only orchestrates ``extract`` and ``qa``; it adds no rule of its own.
"""
