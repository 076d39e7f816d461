"""osteoimmune.pl."""
