"""The Kafka front end: the listener, the registry of APIs, their handlers, the codec."""
