"""One client connection's session: routes each decoded request to its handler.

A session owns what is per connection: the read-only LogReader its fetches use and the
partition states they watch. Any typed error a handler lets through is answered in the
API's own error field by the handler; what reaches here is a bug, and the listener
closes the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eventstore.kafka.codec.protocol import API_VERSIONS, Request, api_versions_response
from eventstore.kafka.context import BrokerContext
from eventstore.kafka.fetch_sessions import FetchSession
from eventstore.kafka.handlers import (
    configs,
    fetch,
    groups,
    list_offsets,
    log_dirs,
    metadata,
    produce,
    producer_ids,
    topics,
)


class Session:
    """Handles the requests of one connection, in order."""

    def __init__(self, ctx: BrokerContext, client_host: str) -> None:
        self._ctx = ctx
        self.client_host = client_host
        self.fetches = FetchSession(ctx)
        self._routes: dict[int, Callable[[Request], Awaitable[Any]]] = {
            0: lambda r: produce.handle_produce(ctx, r),
            1: lambda r: fetch.handle_fetch(ctx, self.fetches, r),
            2: lambda r: list_offsets.handle_list_offsets(ctx, self.fetches, r),
            3: lambda r: metadata.handle_metadata(ctx, r),
            8: lambda r: groups.handle_offset_commit(ctx, r),
            9: lambda r: groups.handle_offset_fetch(ctx, r),
            10: lambda r: groups.handle_find_coordinator(ctx, r),
            11: lambda r: groups.handle_join_group(ctx, r, self.client_host),
            12: lambda r: groups.handle_heartbeat(ctx, r),
            13: lambda r: groups.handle_leave_group(ctx, r),
            14: lambda r: groups.handle_sync_group(ctx, r),
            15: lambda r: groups.handle_describe_groups(ctx, r),
            16: lambda r: groups.handle_list_groups(ctx, r),
            API_VERSIONS: self._api_versions,
            19: lambda r: topics.handle_create_topics(ctx, r),
            20: lambda r: topics.handle_delete_topics(ctx, r),
            22: lambda r: producer_ids.handle_init_producer_id(ctx, r),
            32: lambda r: configs.handle_describe_configs(ctx, r),
            33: lambda r: configs.handle_alter_configs(ctx, r),
            35: lambda r: log_dirs.handle_describe_log_dirs(ctx, r),
            37: lambda r: topics.handle_create_partitions(ctx, r),
            42: lambda r: groups.handle_delete_groups(ctx, r),
            44: lambda r: configs.handle_incremental_alter_configs(ctx, r),
        }

    async def _api_versions(self, request: Request) -> Any:
        return api_versions_response(request.api_version)

    async def handle(self, request: Request) -> Any:
        """The response body for ``request`` (None when the client wants no answer), or
        the whole response frame already encoded (bytes: Fetch, see fetchresponse.py)."""
        return await self._routes[request.api_key](request)

    def close(self) -> None:
        self.fetches.close()
