"""The ``eventstore`` command line: ``main`` parses and dispatches, ``commands/`` holds one
module per command."""
