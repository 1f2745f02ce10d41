"""Pure decisions over plain data: no files, no processes, no clock (``now`` is passed in)."""
