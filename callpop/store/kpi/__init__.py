"""The KPI data in the database: contact logging, the per-manager facts and per-day series, drill
lists behind each figure, the day cache and monthly plans (the maths itself is ``callpop.kpi``)."""
