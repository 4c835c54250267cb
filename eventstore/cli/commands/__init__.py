"""The `eventstore` subcommands besides `serve`, one module each; each has ``register``,
which adds its parser (and its ``run`` function) to the command line."""

from eventstore.cli.commands import (
    acls,
    compact,
    consume,
    delete_records,
    groups,
    mirror,
    produce,
    segments,
    sql,
    topics,
    transactions,
    users,
)

COMMANDS = (topics, produce, consume, delete_records, groups, segments, sql, users,
            acls, compact, mirror, transactions)
