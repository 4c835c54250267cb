"""`eventstore mirror`: continuous replication from an eventstore to a Kafka cluster (issue 22).

A front end like eventstore.cli: it speaks only Kafka APIs (through confluent-kafka) to both
sides, so the same code serves a real Kafka cluster as the target. ``plan`` decides which
topics go where, ``topics`` makes them exist on the target, ``copier`` moves the records.
"""
