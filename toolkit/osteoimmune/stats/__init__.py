"""osteoimmune.stats."""
