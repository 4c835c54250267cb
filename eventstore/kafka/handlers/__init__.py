"""One module per Kafka API (or family of APIs): each answers decoded requests."""
