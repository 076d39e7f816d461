"""osteoimmune.datasets."""
