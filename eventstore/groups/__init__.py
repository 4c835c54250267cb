"""Consumer groups as plain code: the group and member state machines, the coordinator's
logic (driven by an injected clock and scheduler), the consumer protocol and the assignors."""
