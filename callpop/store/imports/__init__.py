"""CSV imports of clients and sales records: reading and parsing files, the per-line field rules,
and storing chunks idempotently (``callpop import``)."""
