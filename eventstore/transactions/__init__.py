"""Kafka's transactions (KIP-98, KIP-447) on one node: the coordinator's plain logic."""
