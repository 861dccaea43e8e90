"""Airflow DAGs: thin TaskFlow wiring of the pipelines in ``omicslake.pipelines`` (no business
logic). Airflow loads each file from this folder; no other layer imports them.
"""

__all__: list[str] = []
