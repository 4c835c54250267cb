"""Kafka wire protocol: the request/response codec and v2 record batches."""
