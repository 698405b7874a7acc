"""``callpop demo``: the launcher that runs the whole product on one laptop, and the generated
demo company (names, a year of history, the seeding of the database)."""
