"""eventstore: a single-node, Kafka-style event streaming store on SQLite segment files."""
