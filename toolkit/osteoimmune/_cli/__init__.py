"""Sub-commands of the ``osteoimmune`` command line, one module per group."""
