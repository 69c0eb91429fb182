"""Which failures mean "the database is unavailable right now" (503, try again), not a bug."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc

# SQLSTATE classes of a server that is down, restarting, overloaded or cut us off:
# 08 connection, 57 operator intervention (pg_terminate_backend, shutdown, statement
# timeout, cannot connect now), 53 insufficient resources (too many connections),
# 40 transaction rollback (serialization failure, deadlock: the retry succeeds), and
# 25006 read-only transaction (a failover left us on a standby).
_SERVER_SIDE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)
_POOL_SIDE = (
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.OperationalError,
    OSError,  # refused, reset, unreachable; TimeoutError (command_timeout) is one too
)


def _unavailable_here(exc: BaseException) -> bool:
    if isinstance(exc, _SERVER_SIDE + _POOL_SIDE):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    # asyncpg also raises InterfaceError for API misuse, which is a bug: only the
    # closed-connection kind is an outage.
    if isinstance(exc, asyncpg.InterfaceError | sqlalchemy.exc.InterfaceError):
        return "closed" in str(exc)
    return False


def database_unavailable(exc: BaseException) -> bool:
    """Whether the error, or one it was raised from, means the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _unavailable_here(current):
            return True
        seen.add(id(current))
        # SQLAlchemy keeps the driver's error as .orig (also its __cause__ when raised).
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            current = orig
        else:
            current = current.__cause__ or current.__context__
    return False
