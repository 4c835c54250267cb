"""Kafka's wire encodings: request and response framing, frame checks, record batches."""
