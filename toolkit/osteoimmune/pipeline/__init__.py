"""osteoimmune.pipeline."""
