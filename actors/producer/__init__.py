"""The embedded producer, by concern: ``client`` (the public Producer and its futures),
``config`` (its settings), ``batch`` (batches being filled and the buffer memory they hold),
``sequencer`` (idempotent numbering) and ``actor`` (the background half that sends, retries
and runs callbacks)."""
