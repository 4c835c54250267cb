"""The embedded producer, by concern: ``client`` (the public Producer), ``future`` (what
``send`` returns), ``config`` (its settings), ``batch`` (partitions and the batches being
filled), ``sequencer`` (idempotent numbering) and ``actor`` (the background half that
sends, retries and runs callbacks)."""
