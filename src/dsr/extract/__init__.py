"""Video → scene record: curation, estimator registry, CPU defaults and learned adapters."""
