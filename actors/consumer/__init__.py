"""The embedded consumer, by concern: ``client`` (the public Consumer), ``records`` (what
``poll`` returns), ``config`` (its settings), ``fetcher`` (reading the assigned partitions),
``membership`` (where it stands in its group) and ``actor`` (heartbeats and asynchronous
commits in the background)."""
