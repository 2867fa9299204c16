"""The HTTP side of the read pool's refusals (``trulayer_common.clickhouse.client``).

* every reader busy and the queue full → 503 ``read_capacity`` with ``Retry-After``: a burst of
  dashboards is told to come back instead of piling up;
* a read stopped at its time limit → 504 ``query_timeout``: the query is too heavy for the
  window it asked (narrowing it helps; retrying unchanged usually does not).
"""

from __future__ import annotations

from aiohttp import web

from trulayer_common.clickhouse.client import ReadCapacityError, ReadTimeoutError
from trulayer_common.errors import ApiError, unavailable
from trulayer_common.http import Handler

READ_ERRORS = (503, 504)


@web.middleware
async def read_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ReadCapacityError as exc:
        raise unavailable("Too many reads in progress; retry shortly", exc.retry_after, "read_capacity") from None
    except ReadTimeoutError as exc:
        raise ApiError(
            504,
            f"The query ran longer than {exc.seconds:g} s and was stopped: narrow the window or the filters",
            "query_timeout",
        ) from None
