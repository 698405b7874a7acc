"""Shared fixtures. Database-backed tests run on SQLite, and on PostgreSQL too when
CALLPOP_TEST_PG_URL names a server (.ci/run starts one)."""
